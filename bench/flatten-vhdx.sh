#!/usr/bin/env bash
# flatten-vhdx.sh - time "impex vhd flatten" of a 3-level AVHDX chain against
# "qemu-img convert" of one dynamic VHDX with the same content.
#
# Builds, with impex's VHDX writer, a 1 GiB dynamic VHDX (32 MiB blocks)
# holding ~512 MiB of random data in 8-24 MiB pieces at scattered 1 MiB
# offsets (many blocks only partly covered), then two AVHDX levels over it
# (2 MiB blocks), each with 64 MiB of scattered overwrites: level 1 in 8 MiB
# pieces at 4 KiB offsets, level 2 in 2 MiB pieces at sector offsets (sector
# bitmaps only partly set) plus zeros over two whole 2 MiB blocks the base
# wrote. The reference content, merged.raw, is made without impex's chain
# code: qemu-img converts the base to raw and Python applies the two levels'
# writes from their plans. merged.vhdx is merged.raw converted by qemu-img
# into a dynamic VHDX with 2 MiB blocks.
#
# QEMU's vhdx driver cannot follow differencing disks, so the peer job is the
# one-level conversion of merged.vhdx into a new dynamic VHDX. Timed in one
# hyperfine run:
#   impex vhd flatten top.avhdx out.vhdx          (the 3-level chain)
#   impex vhd flatten merged.vhdx out.vhdx        (the same job as the peer)
#   qemu-img convert -f vhdx -O vhdx -o block_size=2M merged.vhdx out.vhdx
#   qemu-img convert ... merged.vhdx out.vhdx && sync out.vhdx
# impex flatten fsyncs its output before it exits; qemu-img convert does not
# (its target cache mode is "unsafe"), hence the durable peer that syncs the
# file once afterwards. The goal is the chain's flatten no slower than the
# durable peer. Before each timed run the output is removed and dirty data
# synced.
#
# Environment:
#   IMPEX      the impex binary (default build/tools/impex)
#   BENCH_DIR  work folder, kept afterwards (default: a temporary one, removed
#              at exit); needs about 4 GB free
#   RUNS       timed runs per command (default 3)
#
# Reproduce:
#   meson setup build-release --buildtype=release && ninja -C build-release &&
#   IMPEX=build-release/tools/impex bench/flatten-vhdx.sh
set -euo pipefail

BENCH=flatten-vhdx
REPO=$(cd -- "$(dirname -- "$0")/.." && pwd)
IMPEX=${IMPEX:-build/tools/impex}
IMPEXFS=''
RUNS=${RUNS:-3}
SEED=2026
# shellcheck source=bench/lib.sh
. "$REPO/bench/lib.sh"

for tool in hyperfine qemu-img python3 dd; do
	command -v "$tool" >/dev/null || die "'$tool' is not installed"
done
[[ -x /usr/bin/time ]] || die "'/usr/bin/time' (GNU time) is not installed"
[[ -x $IMPEX ]] || die "'$IMPEX' is not an executable; build impex or set IMPEX"

bench_work
cd -- "$WORK"
rm -f base.vhdx l1.avhdx top.avhdx \
	merged.raw merged.vhdx out.vhdx results.json rss-*.txt

bench_machine
echo "qemu-img:  $(qemu-img --version | head -n1)"
echo "hyperfine: $(hyperfine --version)"

# ---- fixture ----

echo "== fixture"
start=$(date +%s)
# One plan per level, in large pieces (chain_plan_large.py): "DISK_OFFSET
# POOL_OFFSET LENGTH" lines, POOL_OFFSET "zero" for a run of zeros.
bench_pool vhdx
"$IMPEX" vhd create --format vhdx base.vhdx 1G >/dev/null
apply_plan "$PLANS/plan0.txt" "$IMPEX" vhd write base.vhdx
"$IMPEX" vhd snapshot base.vhdx l1.avhdx >/dev/null
apply_plan "$PLANS/plan1.txt" "$IMPEX" vhd write l1.avhdx
"$IMPEX" vhd snapshot l1.avhdx top.avhdx >/dev/null
apply_plan "$PLANS/plan2.txt" "$IMPEX" vhd write top.avhdx
"$IMPEX" vhd check top.avhdx >/dev/null || die "impex vhd check top.avhdx failed"

# The reference, independent of impex's chain reads.
qemu-img convert -f vhdx -O raw base.vhdx merged.raw
merge_plans merged.raw "$PLANS/plan1.txt" "$PLANS/plan2.txt"
rm -f -- "$POOL_FILE"
qemu-img convert -f raw -O vhdx -o subformat=dynamic,block_size=2M merged.raw merged.vhdx
echo "built in $(($(date +%s) - start)) s"

for f in base.vhdx l1.avhdx top.avhdx merged.vhdx; do
	printf '%-12s %6d MiB in the file\n' "$f" $(($(stat -c %s "$f") >> 20))
done
printf '%-12s %6d MiB of data\n' merged.raw $(($(du -B1 merged.raw | cut -f1) >> 20))

# ---- correctness ----

echo "== correctness"
sizes() { # FILE
	echo "$(($(stat -c %s "$1") >> 20)) MiB"
}
check_flatten() { # SOURCE
	rm -f out.vhdx
	"$IMPEX" vhd flatten "$1" out.vhdx >/dev/null
	qemu-img compare -q -f vhdx -F raw out.vhdx merged.raw ||
		die "'impex vhd flatten $1' differs from merged.raw"
	echo "impex vhd flatten $1: identical to merged.raw ($(sizes out.vhdx))"
}
check_flatten top.avhdx
check_flatten merged.vhdx
rm -f out.vhdx
qemu-img convert -f vhdx -O vhdx -o block_size=2M merged.vhdx out.vhdx
qemu-img compare -q -f vhdx -F raw out.vhdx merged.raw ||
	die "qemu-img's conversion of merged.vhdx differs from merged.raw"
echo "qemu-img convert merged.vhdx: identical to merged.raw ($(sizes out.vhdx))"

# ---- memory ----

echo "== max RSS"
max_rss() { # NAME COMMAND...
	local name=$1
	shift
	rm -f out.vhdx
	/usr/bin/time -v -o "rss-$name.txt" "$@" >/dev/null
	printf '%-32s %8d KiB\n' "$name" \
		"$(awk -F': ' '/Maximum resident set size/ { print $2 }' "rss-$name.txt")"
}
max_rss impex-flatten-chain "$IMPEX" vhd flatten top.avhdx out.vhdx
max_rss impex-flatten-merged "$IMPEX" vhd flatten merged.vhdx out.vhdx
max_rss qemu-img-convert-merged qemu-img convert -f vhdx -O vhdx -o block_size=2M merged.vhdx out.vhdx
rm -f out.vhdx

# ---- timing ----

echo "== timing"
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
Q_IMPEX=$(printf '%q' "$IMPEX")
hyperfine --warmup 1 --runs "$RUNS" --export-json results.json \
	--prepare 'rm -f out.vhdx && sync' \
	-n 'impex flatten, 3-level chain' "$Q_IMPEX vhd flatten top.avhdx out.vhdx" \
	-n 'impex flatten, merged.vhdx' "$Q_IMPEX vhd flatten merged.vhdx out.vhdx" \
	-n 'qemu-img convert, merged.vhdx' \
	'qemu-img convert -f vhdx -O vhdx -o block_size=2M merged.vhdx out.vhdx' \
	-n 'qemu-img convert + sync, merged.vhdx' \
	'qemu-img convert -f vhdx -O vhdx -o block_size=2M merged.vhdx out.vhdx && sync out.vhdx'
echo "load after:  $(cut -d' ' -f1-3 /proc/loadavg)"

echo "== summary (medians of $RUNS runs)"
python3 - <<'EOF'
import json

results = {r["command"]: r for r in json.load(open("results.json"))["results"]}
for name, r in results.items():
    print(f"{name:38} median {r['median']:7.3f} s  (min {r['min']:.3f}, max {r['max']:.3f})")


def ratio(label, impex, peer):
    print(f"{label:52} {results[impex]['median'] / results[peer]['median']:5.2f}x")


peer = "qemu-img convert, merged.vhdx"
durable = "qemu-img convert + sync, merged.vhdx"
print()
print("ratios impex / qemu-img (goal: chain flatten at most 1.0x of convert + sync):")
ratio("chain: flatten 3 levels / convert + sync", "impex flatten, 3-level chain", durable)
ratio("one level: flatten merged.vhdx / convert + sync", "impex flatten, merged.vhdx", durable)
ratio("chain: flatten 3 levels / convert (no sync)", "impex flatten, 3-level chain", peer)
ratio("one level: flatten merged.vhdx / convert (no sync)", "impex flatten, merged.vhdx", peer)
EOF
rm -f out.vhdx
