#!/usr/bin/env bash
# flatten.sh - time "impex vhd flatten" against "qemu-img convert", side by side.
#
# Builds a 2 GiB dynamic VHD holding ~1 GiB of random data in 1 MiB pieces
# at scattered offsets (many 2 MiB blocks only half covered), then two
# differencing levels over it, each with ~128 MiB of scattered overwrites
# (the last level also zeroes a few whole blocks). The reference content,
# merged.raw, is made without impex's chain code: qemu-img reads the base and
# Python applies the two levels' writes. merged.vhd is merged.raw converted by
# qemu-img into a dynamic VHD.
#
# QEMU's vpc driver cannot follow differencing disks, so the peer job is the
# one-level conversion of merged.vhd into a new dynamic VHD. Timed in one
# hyperfine run:
#   impex vhd flatten snap2.vhd out.vhd          (the 3-level chain)
#   impex vhd flatten merged.vhd out.vhd         (the same job as the peer)
#   qemu-img convert -f vpc -O vpc -o subformat=dynamic merged.vhd out.vhd
#   qemu-img convert ... merged.vhd out.vhd && sync out.vhd
#   impex vhd cat snap2.vhd > out.raw            (raw read of the chain)
#   qemu-img convert -f vpc -O raw -t unsafe merged.vhd out.raw
# impex flatten fsyncs its output before it exits. qemu-img convert does not
# (its default cache mode for the target is "unsafe"), hence the second,
# durable peer that syncs the file once afterwards, as impex does. Neither
# cat nor "-t unsafe" syncs. Before each timed run the output is removed and
# dirty data is synced, so a run never pays for the previous one's writes.
#
# Environment:
#   IMPEX      the impex binary (default build/tools/impex)
#   BENCH_DIR  work directory, kept afterwards (default: a temporary one,
#              removed at exit); needs about 10 GB free
#   RUNS       timed runs per command (default 5)
#
# Reproduce:
#   meson setup build-release --buildtype=release && ninja -C build-release &&
#   IMPEX=build-release/tools/impex bench/flatten.sh
set -euo pipefail

IMPEX=${IMPEX:-build/tools/impex}
RUNS=${RUNS:-5}
SEED=2026
HERE=$(cd -- "$(dirname -- "$0")" && pwd)
BENCH=flatten.sh
# shellcheck source=bench/lib.sh
. "$HERE/lib.sh"

for tool in hyperfine qemu-img python3 dd; do
	command -v "$tool" >/dev/null || die "'$tool' is not installed"
done
[[ -x /usr/bin/time ]] || die "'/usr/bin/time' (GNU time) is not installed"
[[ -x $IMPEX ]] || die "'$IMPEX' is not an executable; build impex or set IMPEX"
IMPEX=$(realpath -- "$IMPEX")

if [[ -n ${BENCH_DIR:-} ]]; then
	mkdir -p -- "$BENCH_DIR"
	WORK=$(realpath -- "$BENCH_DIR")
else
	WORK=$(mktemp -d -t impex-flatten.XXXXXX)
	trap 'rm -rf -- "$WORK"' EXIT
fi
cd -- "$WORK"
rm -f pool.bin plan0.txt plan1.txt plan2.txt base.vhd snap1.vhd snap2.vhd \
	merged.raw merged.vhd out.vhd out.raw results.json rss-*.txt

echo "== machine"
echo "date:        $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "cpus:        $(nproc), $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')"
echo "memory:      $(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)"
echo "work dir fs: $(df -T . | awk 'NR == 2 { print $2 }')"
echo "impex:       $("$IMPEX" --version 2>&1 | head -n1)"
echo "qemu-img:    $(qemu-img --version | head -n1)"
echo "hyperfine:   $(hyperfine --version)"
echo "load:        $(uptime)"

# ---- fixture ----

echo "== fixture"
DISK=$((2 << 30))
POOL=$((1 << 30))
head -c "$POOL" /dev/urandom >pool.bin

# One plan per level: "DISK_OFFSET POOL_OFFSET LENGTH" lines, POOL_OFFSET
# "zero" for a run of zeros.
python3 "$HERE/chain_plan.py" "$SEED" "$DISK" "$POOL" .

POOL_FILE=$WORK/pool.bin

"$IMPEX" vhd create base.vhd 2G
apply_plan plan0.txt "$IMPEX" vhd write base.vhd
"$IMPEX" vhd snapshot base.vhd snap1.vhd
apply_plan plan1.txt "$IMPEX" vhd write snap1.vhd
"$IMPEX" vhd snapshot snap1.vhd snap2.vhd
apply_plan plan2.txt "$IMPEX" vhd write snap2.vhd
"$IMPEX" vhd check snap2.vhd

# The reference, independent of impex's chain reads.
qemu-img convert -f vpc -O raw base.vhd merged.raw
merge_plans merged.raw plan1.txt plan2.txt
rm -f pool.bin
qemu-img convert -f raw -O vpc -o subformat=dynamic merged.raw merged.vhd

"$IMPEX" vhd check merged.vhd >/dev/null ||
	die "impex cannot read merged.vhd, written by $(qemu-img --version | head -n1)"

for f in base.vhd snap1.vhd snap2.vhd merged.vhd; do
	printf '%-11s %6d MiB in the file, %4d of %d blocks allocated\n' "$f" \
		$(($(stat -c %s "$f") >> 20)) \
		"$("$IMPEX" vhd info --json "$f" | python3 -c 'import json, sys; print(json.load(sys.stdin)["allocated_blocks"])')" \
		"$("$IMPEX" vhd info --json "$f" | python3 -c 'import json, sys; print(json.load(sys.stdin)["blocks"])')"
done
printf '%-11s %6d MiB of data\n' merged.raw $(($(du -B1 merged.raw | cut -f1) >> 20))

# ---- correctness ----

echo "== correctness"
sizes() { # FILE
	echo "$(($(stat -c %s "$1") >> 20)) MiB, $(($(du -B1 "$1" | cut -f1) >> 20)) MiB of it allocated"
}
check_flatten() { # SOURCE
	rm -f out.vhd
	"$IMPEX" vhd flatten "$1" out.vhd
	if ! qemu-img compare -q -f vpc -F raw out.vhd merged.raw; then
		die "'impex vhd flatten $1' differs from merged.raw"
	fi
	echo "impex vhd flatten $1: identical to merged.raw ($(sizes out.vhd))"
}
check_flatten snap2.vhd
check_flatten merged.vhd
rm -f out.vhd
qemu-img convert -f vpc -O vpc -o subformat=dynamic merged.vhd out.vhd
qemu-img compare -q -f vpc -F raw out.vhd merged.raw ||
	die "qemu-img's conversion of merged.vhd differs from merged.raw"
echo "qemu-img convert merged.vhd: identical to merged.raw ($(sizes out.vhd))"

# ---- memory ----

echo "== max RSS"
max_rss() { # NAME COMMAND...
	local name=$1
	shift
	rm -f out.vhd
	/usr/bin/time -v -o "rss-$name.txt" "$@" >/dev/null
	printf '%-32s %8d KiB\n' "$name" \
		"$(awk -F': ' '/Maximum resident set size/ { print $2 }' "rss-$name.txt")"
}
max_rss impex-flatten-chain "$IMPEX" vhd flatten snap2.vhd out.vhd
max_rss impex-flatten-merged "$IMPEX" vhd flatten merged.vhd out.vhd
max_rss qemu-img-convert-merged qemu-img convert -f vpc -O vpc -o subformat=dynamic merged.vhd out.vhd
rm -f out.vhd

# ---- timing ----

echo "== timing"
echo "load before: $(uptime)"
Q_IMPEX=$(printf '%q' "$IMPEX")
hyperfine --warmup 1 --runs "$RUNS" --export-json results.json \
	--prepare 'rm -f out.vhd out.raw && sync' \
	-n 'impex flatten, 3-level chain' "$Q_IMPEX vhd flatten snap2.vhd out.vhd" \
	-n 'impex flatten, merged.vhd' "$Q_IMPEX vhd flatten merged.vhd out.vhd" \
	-n 'qemu-img convert, merged.vhd' \
	'qemu-img convert -f vpc -O vpc -o subformat=dynamic merged.vhd out.vhd' \
	-n 'qemu-img convert + sync, merged.vhd' \
	'qemu-img convert -f vpc -O vpc -o subformat=dynamic merged.vhd out.vhd && sync out.vhd' \
	-n 'impex cat, 3-level chain' "$Q_IMPEX vhd cat snap2.vhd > out.raw" \
	-n 'qemu-img convert -O raw, merged.vhd' \
	'qemu-img convert -f vpc -O raw -t unsafe merged.vhd out.raw'
echo "load after:  $(uptime)"

echo "== summary (medians of $RUNS runs)"
python3 - <<'EOF'
import json

results = {r["command"]: r for r in json.load(open("results.json"))["results"]}
for name, r in results.items():
    print(f"{name:38} median {r['median']:7.3f} s  (min {r['min']:.3f}, max {r['max']:.3f})")

def ratio(label, impex, peer):
    print(f"{label:50} {results[impex]['median'] / results[peer]['median']:5.2f}x")

peer = "qemu-img convert, merged.vhd"
durable = "qemu-img convert + sync, merged.vhd"
print()
print("ratios impex / qemu-img (goal: flatten at most 1.5x of qemu-img convert):")
ratio("one level: flatten merged.vhd / convert merged.vhd", "impex flatten, merged.vhd", peer)
ratio("chain: flatten 3 levels / convert merged.vhd", "impex flatten, 3-level chain", peer)
ratio("one level: flatten merged.vhd / convert + sync", "impex flatten, merged.vhd", durable)
ratio("chain: flatten 3 levels / convert + sync", "impex flatten, 3-level chain", durable)
ratio("raw: cat 3 levels / convert -O raw merged.vhd", "impex cat, 3-level chain",
      "qemu-img convert -O raw, merged.vhd")
EOF
rm -f out.vhd out.raw
