# shellcheck shell=bash disable=SC2317  # functions of the callers, called from traps
# lib.sh - what the benchmarks share, sourced by them after they set BENCH
# (their name, for messages and the work folder), REPO, IMPEX, IMPEXFS,
# VM and SEED:
#   die MESSAGE                      print "BENCH: MESSAGE" and exit 1
#   bench_work                       the work folder $WORK (BENCH_DIR, kept, or a
#                                    new one removed at exit), the clean-up at
#                                    exit of the mounts in MOUNTS and the daemons
#                                    in PIDS, copies of impex and impexfs in
#                                    $WORK/bin (a rebuild during the run changes
#                                    nothing)
#                                    (IMPEXFS may be empty: a bench that mounts
#                                    nothing)
#   bench_machine                    what the run was made on
#   bench_pool [vhd|vhdx]            the chain's pool of random bytes $POOL_FILE and
#                                    its plans $PLANS/plan0.txt (level 0),
#                                    plan1.txt, plan2.txt: "DISK_OFFSET POOL_OFFSET
#                                    LENGTH" a line, POOL_OFFSET "zero" for zeros.
#                                    vhd (default): $WORK/pool.bin, 1 GiB, plans in
#                                    $WORK (chain_plan.py, 1 MiB pieces, a 2 GiB
#                                    disk); vhdx: $WORK/pool-vhdx.bin, 512 MiB,
#                                    plans in $WORK/vhdx (chain_plan_large.py,
#                                    8-24 MiB pieces, a 1 GiB disk: each write of
#                                    a VHDX goes through its log and syncs)
#   apply_plan PLAN COMMAND...       each piece of PLAN on the standard input of
#                                    COMMAND... OFFSET - ($POOL_FILE's bytes or
#                                    zeros)
#   merge_plans RAW PLAN...          the PLANs' pieces written over the raw image
#                                    RAW, in order, by Python (a reference made
#                                    without impex's chain code)
#   bench_fixture SNAP [vhd|vhdx]    $STORE: VM $VM with one dynamic disk, three
#                                    levels of scattered data (bench_pool's plans)
#                                    and snapshots one-level, two-levels and SNAP
#                                    after them. vhd (default): a generation 1 VM,
#                                    a 2 GiB VHD, $WORK/store; vhdx: a generation
#                                    2 VM, a 1 GiB VHDX (32 MiB blocks) and AVHDX
#                                    levels (2 MiB blocks), $WORK/store-vhdx, and
#                                    $FIXTURE_REF, SNAP's merged content as
#                                    merge_plans makes it. Made once per work
#                                    folder
#   bench_small_export               $SMALL: the export folder of VM "small", one
#                                    64 MiB dynamic disk holding 32 MiB of random
#                                    data; made once per work folder
#   start NAME MOUNTPOINT COMMAND... a FUSE daemon in the foreground, in the
#                                    background, once its mount is there (LAST_PID)

die() {
	echo "$BENCH: $*" >&2
	exit 1
}

bench_work() {
	if [[ -n ${BENCH_DIR:-} ]]; then
		mkdir -p -- "$BENCH_DIR"
		WORK=$(realpath -- "$BENCH_DIR")
		KEEP=1
	else
		WORK=$(mktemp -d "${TMPDIR:-/tmp}/impex-$BENCH.XXXXXX")
		KEEP=0
	fi
	MOUNTS=() # mount points, unmounted at exit
	PIDS=()   # daemons started here, killed at exit if still running

	cleanup() {
		local rc=$? m p busy=0
		trap - EXIT INT TERM
		for m in "${MOUNTS[@]}"; do
			if mountpoint -q -- "$m"; then
				fusermount3 -u -- "$m" 2>/dev/null || fusermount3 -uz -- "$m" 2>/dev/null || true
			fi
		done
		for p in "${PIDS[@]}"; do
			# Our own children: a pid stays ours until we wait for it.
			if kill -0 "$p" 2>/dev/null; then
				sleep 0.2
				if kill -0 "$p" 2>/dev/null; then
					kill "$p" 2>/dev/null || true
				fi
			fi
			wait "$p" 2>/dev/null || true
		done
		for m in "${MOUNTS[@]}"; do
			mountpoint -q -- "$m" && busy=1
		done
		if ((busy)); then
			echo "$BENCH: a mount is still there; $WORK left in place" >&2
		elif ((!KEEP)); then
			rm -rf -- "$WORK"
		fi
		exit "$rc"
	}
	trap cleanup EXIT
	trap 'exit 130' INT TERM

	mkdir -p "$WORK/bin" "$WORK/mnt" "$WORK/log"
	# Copies of the binaries: a rebuild during the run changes nothing.
	IMPEX_GIVEN=$(realpath -- "$IMPEX")
	cp -- "$IMPEX" "$WORK/bin/impex"
	IMPEX=$WORK/bin/impex
	IMPEXFS_GIVEN=''
	if [[ -n ${IMPEXFS:-} ]]; then
		IMPEXFS_GIVEN=$(realpath -- "$IMPEXFS")
		cp -- "$IMPEXFS" "$WORK/bin/impexfs"
		IMPEXFS=$WORK/bin/impexfs
	fi
}

bench_machine() {
	echo "== machine"
	echo "date:      $(date -u '+%Y-%m-%d %H:%M UTC')"
	echo "cpus:      $(nproc), $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')"
	echo "memory:    $(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)"
	echo "kernel:    $(uname -r); libfuse $(pkg-config --modversion fuse3)"
	echo "work fs:   $(df -T "$WORK" | awk 'NR == 2 { print $2 }')"
	echo "impex:     $("$IMPEX" --version 2>&1 | head -n1), $IMPEX_GIVEN${IMPEXFS_GIVEN:+, $IMPEXFS_GIVEN}"
	echo "repo:      $(git -C "$REPO" describe --always --dirty 2>/dev/null || echo '?')"
	echo "load:      $(cut -d' ' -f1-3 /proc/loadavg)"
}

bench_pool() { # [vhd|vhdx]
	local disk pool gen
	if [[ ${1:-vhd} == vhdx ]]; then
		POOL_FILE=$WORK/pool-vhdx.bin PLANS=$WORK/vhdx
		disk=$((1 << 30)) pool=$((512 << 20)) gen=chain_plan_large.py
	else
		POOL_FILE=$WORK/pool.bin PLANS=$WORK
		disk=$((2 << 30)) pool=$((1 << 30)) gen=chain_plan.py
	fi
	if [[ ! -f $POOL_FILE || ! -f $PLANS/plan2.txt ]]; then
		mkdir -p -- "$PLANS"
		rm -f -- "$POOL_FILE" "$PLANS"/plan*.txt
		head -c "$pool" /dev/urandom >"$POOL_FILE.part"
		mv -- "$POOL_FILE.part" "$POOL_FILE"
		python3 "$REPO/bench/$gen" "$SEED" "$disk" "$pool" "$PLANS"
	fi
}

# apply_plan PLAN COMMAND...: run COMMAND... OFFSET - once a piece of PLAN,
# the piece on its standard input.
apply_plan() {
	local plan=$1 off src len
	shift
	while read -r off src len; do
		if [[ $src == zero ]]; then
			head -c "$len" /dev/zero
		else
			dd if="$POOL_FILE" bs=1M iflag=skip_bytes,count_bytes \
				skip="$src" count="$len" status=none
		fi | "$@" "$off" - >/dev/null
	done <"$plan"
}

merge_plans() { # RAW PLAN...
	python3 - "$POOL_FILE" "$@" <<'EOF'
import os
import sys

pool_path, raw, plans = sys.argv[1], sys.argv[2], sys.argv[3:]
fd = os.open(raw, os.O_WRONLY)
with open(pool_path, "rb") as pool:
    for plan in plans:
        for line in open(plan):
            off, src, length = line.split()
            if src == "zero":
                data = bytes(int(length))
            else:
                pool.seek(int(src))
                data = pool.read(int(length))
            os.pwrite(fd, data, int(off))
os.close(fd)
EOF
}

bench_fixture() { # SNAP [vhd|vhdx]
	local snap=$1 format=${2:-vhd} done stale start write
	case $format in
	vhd)
		STORE=$WORK/store
		done=$WORK/fixture.done
		FIXTURE_REF=''
		stale=$WORK/ref.raw # exportfs.sh's copy of the merged content
		;;
	vhdx)
		STORE=$WORK/store-vhdx
		done=$WORK/fixture-vhdx.done
		FIXTURE_REF=$WORK/ref-vhdx.raw
		stale=$FIXTURE_REF
		;;
	*) die "bench_fixture: no format '$format'" ;;
	esac
	if [[ ! -f $done ]]; then
		echo "== fixture: a store with one VM, a $format disk, 3 levels of scattered data"
		rm -rf -- "$STORE" "$stale"
		start=$(date +%s)
		bench_pool "$format"
		"$IMPEX" store init "$STORE" >/dev/null
		if [[ $format == vhd ]]; then
			"$IMPEX" vm new --store "$STORE" --disk ide:2G "$VM" >/dev/null
		else
			"$IMPEX" vm new --store "$STORE" --generation 2 --disk-format vhdx \
				--disk scsi:1G "$VM" >/dev/null
		fi
		write=("$IMPEX" vm write --store "$STORE" "$VM" 0)
		apply_plan "$PLANS/plan0.txt" "${write[@]}"
		"$IMPEX" vm snapshot --store "$STORE" "$VM" one-level >/dev/null
		apply_plan "$PLANS/plan1.txt" "${write[@]}"
		"$IMPEX" vm snapshot --store "$STORE" "$VM" two-levels >/dev/null
		apply_plan "$PLANS/plan2.txt" "${write[@]}"
		"$IMPEX" vm snapshot --store "$STORE" "$VM" "$snap" >/dev/null
		if [[ -n $FIXTURE_REF ]]; then
			truncate -s 1G "$FIXTURE_REF"
			merge_plans "$FIXTURE_REF" "$PLANS"/plan{0,1,2}.txt
		fi
		rm -f -- "$POOL_FILE"
		touch "$done"
		echo "built in $(($(date +%s) - start)) s"
	fi
}

bench_small_export() {
	SMALL=$WORK/export-small
	if [[ ! -d $SMALL ]]; then
		rm -rf -- "$WORK/small-store" "$SMALL.part"
		"$IMPEX" store init "$WORK/small-store" >/dev/null
		"$IMPEX" vm new --store "$WORK/small-store" --disk ide:64M small >/dev/null
		head -c $((32 << 20)) /dev/urandom |
			"$IMPEX" vm write --store "$WORK/small-store" small 0 0 - >/dev/null
		"$IMPEX" export --store "$WORK/small-store" small "$SMALL.part" >/dev/null
		mv -- "$SMALL.part" "$SMALL"
	fi
}

# start NAME MOUNTPOINT COMMAND...: run a FUSE daemon that stays in the
# foreground, in the background, and wait until its mount is there.
# Sets LAST_PID.
start() {
	local name=$1 mnt=$2 i
	shift 2
	mkdir -p -- "$mnt"
	"$@" >"$WORK/log/$name.log" 2>&1 &
	LAST_PID=$!
	PIDS+=("$LAST_PID")
	MOUNTS+=("$mnt")
	for ((i = 0; i < 600; i++)); do
		mountpoint -q -- "$mnt" && return 0
		kill -0 "$LAST_PID" 2>/dev/null ||
			die "$name exited before mounting: $(cat "$WORK/log/$name.log")"
		sleep 0.05
	done
	die "$name: no mount after 30 s"
}

# bench_lock FILE...: hold the files' pages in the page cache for the rest of the run (a
# process that maps and mlocks them, ended at exit): what the read benches measure is the FUSE
# path over warm sources, and on a machine that pages out cold memory (DAMON's pageout) a
# re-read after drop_caches does not keep them warm until they are read. Locked pages survive
# drop_caches; the FUSE files' own pages do not. LOCK=0 leaves the files unlocked.
bench_lock() {
	((${LOCK:-1})) || return 0
	python3 - "$@" >"$WORK/log/lock.log" 2>&1 <<'PY' &
import ctypes
import mmap
import os
import signal
import sys

maps = []
for path in sys.argv[1:]:
    fd = os.open(path, os.O_RDONLY)
    maps.append(mmap.mmap(fd, 0, prot=mmap.PROT_READ))
    os.close(fd)
libc = ctypes.CDLL(None, use_errno=True)
if libc.mlockall(1) != 0:  # MCL_CURRENT: fault in and lock every page mapped
    sys.exit("mlockall: %s" % os.strerror(ctypes.get_errno()))
print("locked", flush=True)
signal.pause()
PY
	LOCK_PID=$!
	PIDS+=("$LOCK_PID")
	local i
	for ((i = 0; i < 1200; i++)); do
		grep -q locked "$WORK/log/lock.log" 2>/dev/null && {
			echo "sources locked in memory: $(du -chL -- "$@" | tail -n1 | cut -f1)"
			return 0
		}
		kill -0 "$LOCK_PID" 2>/dev/null || die "cannot lock the sources: $(cat "$WORK/log/lock.log")"
		sleep 0.1
	done
	die "locking the sources took over 2 minutes"
}

# bench_read_cases RESULTS: read each of CASES ("name|file|sources|bdi|read_ahead_kb") with
# dd, RUNS rounds interleaved, after the script's own "prepare SOURCES BDI READ_AHEAD_KB";
# one "name run bytes nanoseconds" line per read into RESULTS (tab-separated).
bench_read_cases() {
	local results=$1 run c name file sources bdi ra bytes t0 t1

	: >"$results"
	echo "== timing: ${#CASES[@]} cases x $RUNS runs, interleaved"
	echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
	for ((run = 1; run <= RUNS; run++)); do
		for c in "${CASES[@]}"; do
			IFS='|' read -r name file sources bdi ra <<<"$c"
			prepare "$sources" "$bdi" "$ra"
			bytes=$(stat -c %s -- "$file")
			t0=$(date +%s%N)
			dd if="$file" of=/dev/null bs=1M status=none
			t1=$(date +%s%N)
			printf '%s\t%d\t%d\t%d\n' "$name" "$run" "$bytes" $((t1 - t0)) >>"$results"
			awk -v r="$run" -v n="$name" -v b="$bytes" -v ns=$((t1 - t0)) \
				'BEGIN { printf "run %d  %-34s %7.3f s  %7.0f MB/s\n", r, n, ns / 1e9, b * 1e3 / ns }'
		done
	done
	echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
}
