#!/bin/bash
# The impexfs demo: installs what is missing, builds in build/, then shows
# the VHD engine at work on generated disks (a three-level differencing
# chain written sector by sector, flattened into one independent dynamic
# VHD, checked by qemu-img and vhdiinfo against a raw image built with dd),
# then a generated store of VMs with snapshots, read back through the chains.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cd "$IMPEX_ROOT"

impex_install_packages "${IMPEX_PACKAGES[@]}"
impex_build build >/dev/null
IMPEX=$IMPEX_ROOT/build/tools/impex
IMPEXFS=$IMPEX_ROOT/build/fs/impexfs

WORK=$(mktemp -d "${TMPDIR:-/tmp}/impex-demo.XXXXXX")
# Whatever happens, what the demo mounted is unmounted before its folder goes.
cleanup() {
	if mountpoint -q "$WORK/guest" 2>/dev/null; then umount "$WORK/guest" || true; fi
	if mountpoint -q "$WORK/export" 2>/dev/null; then fusermount3 -u "$WORK/export" || true; fi
	if mountpoint -q "$WORK/import" 2>/dev/null; then fusermount3 -u "$WORK/import" || true; fi
	rm -rf "$WORK"
}
trap cleanup EXIT
cd "$WORK"

if [ -t 1 ]; then
	say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
else
	say() { printf '\n== %s\n' "$*"; }
fi
show() { printf '$ %s\n' "$*"; "$@"; }

# Each write goes into a VHD with impex, and into expected.raw with dd.
SIZE_MIB=256
truncate -s ${SIZE_MIB}M expected.raw
put() { # put DISK OFFSET TEXT-SEED SECTORS
	local disk=$1 offset=$2 seed=$3 sectors=$4
	head -c $((sectors * 512)) </dev/zero | tr '\0' "$seed" >"chunk"
	"$IMPEX" vhd write "$disk" "$offset" chunk
	dd if=chunk of=expected.raw bs=512 seek=$((offset / 512)) conv=notrunc status=none
	printf '  wrote %4d sectors of "%s" at byte %d of %s\n' "$sectors" "$seed" "$offset" "$disk"
}

say "A 256 MiB dynamic disk, and data in it"
show "$IMPEX" vhd create base.vhd ${SIZE_MIB}M
put base.vhd 0 A 1                       # the first sector
put base.vhd $((1024 * 1024)) B 2048     # a whole MiB
put base.vhd $((2 * 1024 * 1024 - 1024)) C 4   # straddles the first block boundary
put base.vhd $((SIZE_MIB * 1024 * 1024 - 512)) D 1   # the last sector

say "Two snapshots over it, each overwriting parts of the levels below"
show "$IMPEX" vhd snapshot base.vhd mid.vhd
put mid.vhd $((1024 * 1024 + 512 * 7)) E 3
put mid.vhd $((100 * 1024 * 1024)) F 8
show "$IMPEX" vhd snapshot mid.vhd top.vhd
put top.vhd 512 G 1
put top.vhd $((1024 * 1024 + 512 * 8)) H 1   # between E's sectors: one 2 MiB block mixes 3 levels
put top.vhd $((SIZE_MIB * 1024 * 1024 - 512)) I 1

say "The chain as impex sees it"
show "$IMPEX" vhd info top.vhd

say "Flattened into one independent dynamic VHD (all-zero blocks left out)"
show "$IMPEX" vhd flatten top.vhd flat.vhd
echo '  files (allocated KiB, size):'
ls -ls base.vhd mid.vhd top.vhd flat.vhd | awk '{ printf "  %8s KiB %12s  %s\n", $1, $6, $NF }'

say "qemu-img opens it (checking its checksums) and compares it with the raw image dd built"
show qemu-img info -f vpc flat.vhd
show qemu-img compare -f vpc -F raw flat.vhd expected.raw

say "vhdiinfo, an independent reader, reads the flattened disk and the differencing top"
echo '$ vhdiinfo flat.vhd'
vhdiinfo flat.vhd | grep -E 'Format|Disk type|Media size|Identifier'
echo '$ vhdiinfo top.vhd'
vhdiinfo top.vhd | grep -E 'Disk type|Media size|Parent'

say "The merged content, streamed by impex vhd cat, equals the raw image too"
"$IMPEX" vhd cat top.vhd | cmp - expected.raw && echo "  identical: $(( SIZE_MIB )) MiB"

say "A demo store: three VMs, a blog with a snapshot tree, files that change between snapshots"
show "$IMPEX" demo store
export IMPEX_STORE=$WORK/store
show "$IMPEX" vm list
show "$IMPEX" vm show blog

say "The blog's guest files at each snapshot, read from the merged chains by debugfs"
echo "  (its system disk is partitioned: a GPT, the ext4 file system in partition 1, at 1 MiB)"
"$IMPEX" vm show --json blog | python3 -c '
import json, sys
vm = json.load(sys.stdin)
for snap in vm["snapshots"]:
    print(snap["name"] + "\t" + snap["disks"][0]["path"])
print("now\t" + vm["disks"][0]["path"])' | while IFS=$'\t' read -r name disk; do
	"$IMPEX" vhd cat "$disk" > guest.raw
	printf '  %-16s motd: %s\n' "$name" "$(debugfs -R 'cat /motd' 'guest.raw?offset=1048576' 2>/dev/null)"
done

say "The export mount: every VM and every snapshot of the store as an export folder"
mkdir export
show "$IMPEXFS" "$WORK/store" "$WORK/export"
show ls export export/vms export/snapshots/blog
show rsync -a --sparse export/vms/blog/ backup-blog/
echo '$ du -sh --apparent-size backup-blog; du -sh backup-blog   # --sparse keeps the holes'
du -sh --apparent-size backup-blog; du -sh backup-blog
show "$IMPEX" vm list --store backup-blog
echo '$ rsync -a --itemize-changes export/vms/blog/ backup-blog/   # the same bytes: nothing to copy'
rsync -a --itemize-changes export/vms/blog/ backup-blog/ | sed 's/^/  /'

say "One snapshot, copied out as a VM of its own (its chain merged into one VHD on the fly)"
show cp -r "export/snapshots/blog/version 2" snapshot-copy
show "$IMPEX" vm show --store snapshot-copy blog
show qemu-img info -f vpc "snapshot-copy/Virtual Hard Disks/blog.vhd"

say "The guest's files at a snapshot, through a loop mount of its partition's raw image"
show ls -l export/raw/blog
show ls -l export/raw/blog/installed
show sfdisk -l export/raw/blog/installed/blog.img
if [ "$(id -u)" = 0 ]; then
	mkdir guest
	show mount -o loop,ro "export/raw/blog/installed/blog-part1.img" guest
	show cat guest/motd
	show ls guest/posts
	umount guest
else
	echo "  (loop mounts need root: skipped)"
fi

say "The import mount: the snapshot copied in becomes a new VM of the store (copy on import, new IDs)"
mkdir import
show "$IMPEXFS" -o import "$WORK/store" "$WORK/import"
show cp -r "export/snapshots/blog/version 2" "import/blog v2"
echo '$ impex status import   # registered once whole and valid, and quiet for half a second'
for _ in $(seq 100); do
	grep -q '"state": "registered"' import/.impex-status && break
	sleep 0.1
done
"$IMPEX" status import | head -n 2
show "$IMPEX" vm list
NEW=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["imports"][0]["vm"]["id"])' import/.impex-status)
show "$IMPEX" vm show "$NEW"
echo "\$ impex vhd cat <its disk> | debugfs: the motd of \"version 2\", in the new VM"
"$IMPEX" vm show --json "$NEW" | python3 -c 'import json, sys; print(json.load(sys.stdin)["disks"][0]["path"])' |
	while read -r disk; do
		"$IMPEX" vhd cat "$disk" > guest.raw
		printf '  motd: %s\n' "$(debugfs -R 'cat /motd' 'guest.raw?offset=1048576' 2>/dev/null)"
	done

say "A generation 2 VM: its disk a VHDX, its two checkpoints AVHDX differencing disks"
show "$IMPEX" vm show db
show ls "export/vms/db/Virtual Hard Disks"
echo '$ impex vhd info <the exported top AVHDX>   # it names its parent in the export folder'
TOP=$(ls "export/vms/db/Virtual Hard Disks"/*.avhdx | tail -n 1)
"$IMPEX" vhd info "$TOP" | grep -E 'VHDX|relative_path|found by' | sed 's/^/  /'

say "The checkpoint \"schema\" copied out as a VM of its own: its AVHDX chain merged into one VHDX"
show cp -r "export/snapshots/db/schema" db-schema
show "$IMPEX" vhd info "db-schema/Virtual Hard Disks/db.vhdx"
show qemu-img check -f vhdx "db-schema/Virtual Hard Disks/db.vhdx"
SCHEMA=$("$IMPEX" vm show --json db | python3 -c '
import json, sys
print([s for s in json.load(sys.stdin)["snapshots"] if s["name"] == "schema"][0]["disks"][0]["path"])')
echo '$ impex vhd cat <the copy> | cmp - <impex vhd cat of the checkpoint'"'"'s chain in the store>'
cmp <("$IMPEX" vhd cat "db-schema/Virtual Hard Disks/db.vhdx") <("$IMPEX" vhd cat "$SCHEMA") &&
	echo "  identical"

say "And imported back through the import mount: a new generation 2 VM with a VHDX disk"
show cp -r "export/snapshots/db/schema" "import/db schema"
for _ in $(seq 100); do
	[ "$(grep -c '"state": "registered"' import/.impex-status)" -ge 2 ] && break
	sleep 0.1
done
NEW=$(python3 -c '
import json, sys
print([i for i in json.load(open(sys.argv[1]))["imports"] if i["folder"] == "db schema"][0]["vm"]["id"])' import/.impex-status)
show "$IMPEX" vm show "$NEW"
DISK=$("$IMPEX" vm show --json "$NEW" | python3 -c 'import json, sys; print(json.load(sys.stdin)["disks"][0]["path"])')
echo '$ impex vhd cat <its disk> | cmp - <the checkpoint'"'"'s chain>'
cmp <("$IMPEX" vhd cat "$DISK") <("$IMPEX" vhd cat "$SCHEMA") && echo "  identical"
show fusermount3 -u "$WORK/import"
show fusermount3 -u "$WORK/export"

say "Done: chains merged sector by sector and checked by qemu-img and vhdiinfo; a store of VMs and snapshots, exported through the mount, a snapshot imported back as a new VM, and a generation 2 VM's VHDX checkpoint exported and imported the same way"
