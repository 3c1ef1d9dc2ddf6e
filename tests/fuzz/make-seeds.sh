#!/bin/sh
# Make the seed corpora of the fuzz targets, one folder each under OUTDIR:
#   vhd/      single files: dynamic (2 MiB, 4 KiB and 512-byte blocks), fixed,
#             differencing
#   chain/    child.vhd, parent.vhd and grandparent.vhd joined by @@NEXT@@
#   stream/   children of the base disk that fuzz_stream makes
#   pathmap/  NUL-separated fields: map, Windows path, Linux path, folder,
#             relative path
#   config/   configurations that impex writes (UTF-16LE): a VM with IDE and
#             SCSI disks and two adapters, a snapshot's, and a UTF-8 copy
#   vhdx/     VHDX files built by tests/vhdxcraft.py, as fuzz_vhdx reads them
#             (tests/fuzz/vhdx-seeds.py)
#   partition/ MBR (with logical partitions) and GPT tables at 512- and
#             4096-byte sectors, as fuzz_partition reads them
#             (tests/fuzz/partition-seeds.py)
#
# usage: make-seeds.sh IMPEX OUTDIR
#
# The disks are made with "impex vhd create/snapshot/write". A few header
# fields are then patched (and the checksums recomputed) to keep seeds small:
# snapshots always get 2 MiB blocks, and one written sector would make a
# 2 MiB seed, so children are given 8 KiB blocks (the BAT of a 1 MiB
# snapshot has room for 128 entries); a fixed disk is cut down to 8 KiB; one
# dynamic disk gets 512-byte blocks, which impex does not create.
set -eu

if [ $# -ne 2 ]; then
	echo "usage: $0 IMPEX OUTDIR" >&2
	exit 2
fi
impex=$1
out=$2
work=$(mktemp -d "${TMPDIR:-/tmp}/impex-seeds-XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM

rm -rf "$out"
mkdir -p "$out/vhd" "$out/chain" "$out/stream" "$out/pathmap" "$out/config" "$out/settings" "$out/journal" "$out/vhdx" "$out/partition"

# The identity of fuzz_stream's base disk (fuzz_stream.c, base_uuid).
stream_base_uuid=5eedba5e000040008000000000000001

cat >"$work/patch.py" <<'PY'
import struct, sys

def checksum(raw, at):
    total = sum(raw[:at]) + sum(raw[at + 4:])
    return struct.pack(">I", ~total & 0xFFFFFFFF)

def footer_fix(raw):
    raw[64:68] = b"\0\0\0\0"
    raw[64:68] = checksum(raw, 64)

def read_footer(f):
    f.seek(-512, 2)
    return bytearray(f.read(512))

def write_footers(f, footer, dynamic):
    f.seek(-512, 2)
    f.write(footer)
    if dynamic:
        f.seek(0)
        f.write(footer)

def header(path, block_size):
    """Give a dynamic or differencing disk @block_size blocks."""
    with open(path, "r+b") as f:
        footer = read_footer(f)
        size = struct.unpack(">Q", footer[48:56])[0]
        at = struct.unpack(">Q", footer[16:24])[0]
        f.seek(at)
        h = bytearray(f.read(1024))
        room = (struct.unpack(">I", h[28:32])[0] * 4 + 511) // 512 * 128
        needed = (size + block_size - 1) // block_size
        if needed > room:
            sys.exit("%s: %d entries needed, room for %d" % (path, needed, room))
        h[28:32] = struct.pack(">I", needed)
        h[32:36] = struct.pack(">I", block_size)
        h[36:40] = checksum(h, 36)
        f.seek(at)
        f.write(h)

def uuid(path, hex_uuid):
    """Give a fixed or dynamic disk the UUID @hex_uuid."""
    with open(path, "r+b") as f:
        footer = read_footer(f)
        footer[68:84] = bytes.fromhex(hex_uuid)
        footer_fix(footer)
        write_footers(f, footer, struct.unpack(">I", footer[60:64])[0] != 2)

def resize(path, size):
    """Give a dynamic or differencing disk a size of @size bytes (its BAT must cover it)."""
    with open(path, "r+b") as f:
        footer = read_footer(f)
        footer[40:48] = struct.pack(">Q", size)
        footer[48:56] = struct.pack(">Q", size)
        footer_fix(footer)
        write_footers(f, footer, True)

def shrink(path, size):
    """Cut a fixed disk down to @size bytes of data."""
    with open(path, "r+b") as f:
        footer = read_footer(f)
        footer[40:48] = struct.pack(">Q", size)
        footer[48:56] = struct.pack(">Q", size)
        footer_fix(footer)
        f.truncate(size)
        f.seek(size)
        f.write(footer)

globals()[sys.argv[1]](sys.argv[2], int(sys.argv[3]) if sys.argv[1] != "uuid" else sys.argv[3])
PY
patch_vhd() {
	python3 "$work/patch.py" "$@"
}

# make_data LENGTH SEED: deterministic bytes into $work/data.
make_data() {
	python3 -c 'import sys; n, s = int(sys.argv[2]), int(sys.argv[3])
open(sys.argv[1], "wb").write(bytes((s * 31 + i * 7 + (i >> 9)) & 0xFF or 1 for i in range(n)))' \
		"$work/data" "$1" "$2"
}

# write_data FILE OFFSET LENGTH SEED
write_data() {
	make_data "$3" "$4"
	"$impex" vhd write "$1" "$2" "$work/data" >/dev/null
}

# join_files OUT FILE...: files separated by fuzz_chain's separator.
join_files() {
	target=$1
	shift
	: >"$target"
	first=1
	for f in "$@"; do
		[ $first -eq 1 ] || printf '@@NEXT@@' >>"$target"
		cat "$f" >>"$target"
		first=0
	done
}

mapping="C:\\VMs=$work"

# ---- single files ----
v=$work/v
mkdir "$v"
"$impex" vhd create "$v/dynamic-2m.vhd" 1M
"$impex" vhd create --block-size 4K "$v/dynamic-4k.vhd" 1M
write_data "$v/dynamic-4k.vhd" 0 512 1
write_data "$v/dynamic-4k.vhd" 5120 1024 2
write_data "$v/dynamic-4k.vhd" 1048064 512 3
# impex creates blocks of 4 KiB at least (QEMU misreads smaller ones); the
# core reads 512-byte blocks, so make one: 256 BAT entries cover 128 KiB.
"$impex" vhd create --block-size 4K "$v/dynamic-512.vhd" 1M
patch_vhd resize "$v/dynamic-512.vhd" 131072
patch_vhd header "$v/dynamic-512.vhd" 512
write_data "$v/dynamic-512.vhd" 1024 1536 4
"$impex" vhd create --type fixed "$v/fixed.vhd" 1M
write_data "$v/fixed.vhd" 512 1024 5
patch_vhd shrink "$v/fixed.vhd" 8192
"$impex" vhd snapshot --pathmap "$mapping" "$v/dynamic-4k.vhd" "$v/child-2m.vhd"
"$impex" vhd snapshot --pathmap "$mapping" "$v/dynamic-4k.vhd" "$v/child.vhd"
patch_vhd header "$v/child.vhd" 8192
write_data "$v/child.vhd" 1536 512 6
write_data "$v/child.vhd" 8192 4096 7
write_data "$v/child.vhd" 1048064 512 8
for f in "$v"/*.vhd; do
	"$impex" vhd check "$f" >/dev/null
	cp "$f" "$out/vhd/"
done

# ---- chains: child.vhd, parent.vhd, grandparent.vhd in one folder ----
# snapshot PARENT CHILD: a child with 8 KiB blocks.
snapshot() {
	"$impex" vhd snapshot --pathmap "$mapping" "$1" "$2"
	patch_vhd header "$2" 8192
}

c=$work/c2
mkdir "$c"
cp "$v/dynamic-4k.vhd" "$c/parent.vhd"
snapshot "$c/parent.vhd" "$c/child.vhd"
write_data "$c/child.vhd" 1024 512 9
write_data "$c/child.vhd" 7680 1024 10
"$impex" vhd check "$c/child.vhd" >/dev/null
join_files "$out/chain/two-levels" "$c/child.vhd" "$c/parent.vhd"
join_files "$out/chain/orphan" "$c/child.vhd"

c=$work/c3
mkdir "$c"
cp "$v/dynamic-4k.vhd" "$c/grandparent.vhd"
snapshot "$c/grandparent.vhd" "$c/parent.vhd"
write_data "$c/parent.vhd" 0 1024 11
write_data "$c/parent.vhd" 9216 512 12
snapshot "$c/parent.vhd" "$c/child.vhd"
write_data "$c/child.vhd" 512 512 13
write_data "$c/child.vhd" 1047552 1024 14
"$impex" vhd check "$c/child.vhd" >/dev/null
join_files "$out/chain/three-levels" "$c/child.vhd" "$c/parent.vhd" "$c/grandparent.vhd"

c=$work/c3f
mkdir "$c"
cp "$v/fixed.vhd" "$c/grandparent.vhd"
"$impex" vhd snapshot "$c/grandparent.vhd" "$c/parent.vhd"
patch_vhd header "$c/parent.vhd" 4096
write_data "$c/parent.vhd" 4096 512 15
"$impex" vhd snapshot "$c/parent.vhd" "$c/child.vhd"
patch_vhd header "$c/child.vhd" 512
write_data "$c/child.vhd" 0 512 16
"$impex" vhd check "$c/child.vhd" >/dev/null
join_files "$out/chain/over-fixed" "$c/child.vhd" "$c/parent.vhd" "$c/grandparent.vhd"

# ---- stream: children of a disk with fuzz_stream's base UUID ----
s=$work/s
mkdir "$s"
"$impex" vhd create --block-size 4K "$s/base.vhd" 1M
patch_vhd uuid "$s/base.vhd" "$stream_base_uuid"
"$impex" vhd snapshot "$s/base.vhd" "$s/empty.vhd"
patch_vhd header "$s/empty.vhd" 8192
"$impex" vhd snapshot "$s/base.vhd" "$s/child.vhd"
patch_vhd header "$s/child.vhd" 8192
write_data "$s/child.vhd" 512 512 17
write_data "$s/child.vhd" 8192 1536 18
write_data "$s/child.vhd" 1048064 512 19
"$impex" vhd check "$s/child.vhd" >/dev/null
for f in "$s/empty.vhd" "$s/child.vhd"; do
	cp "$f" "$out/stream/${f##*/}"
done
mv "$out/stream/child.vhd" "$out/stream/child-written.vhd"
cp "$v/dynamic-4k.vhd" "$v/fixed.vhd" "$out/stream/"

# ---- pathmap ----
p=$out/pathmap
printf 'C:\\VMs=/srv/vms\000C:\\VMs\\web\\..\\web\\disk.vhd\000/srv/vms/web/disk.vhd\000/srv/vms/web\000.\\base.vhd\000' >"$p/drive"
printf '\\\\nas\\vms\\=/mnt/nas;D:\\=/\000\\\\NAS\\VMS\\a\\.\\b.avhd\000/mnt/nas/a/b.avhd\000/mnt/nas/c\000..\\a\\b.avhd\000' >"$p/unc"
printf 'c:/Hyper-V=/var/lib/hv\000c:/hyper-v/Virtual Hard Disks/\303\251t\303\251 \346\227\245.vhd\000/var/lib/hv/x\000/\000..\\..\\x\000' >"$p/unicode"
printf 'W\000:\000\\\000' >"$p/utf16"

# ---- config ----
st=$work/store
"$impex" store init "$st" >/dev/null
"$impex" switch add --store "$st" "External & <LAN>" >/dev/null
"$impex" switch add --store "$st" Internal >/dev/null
"$impex" vm new --store "$st" --disk ide:4M --disk scsi:4M --switch "External & <LAN>" \
	--switch Internal "blog \303\251t\303\251" >/dev/null
"$impex" vm snapshot --store "$st" "blog \303\251t\303\251" first >/dev/null
cp "$st/Virtual Machines/"*.xml "$out/config/vm.xml"
cp "$st/Snapshots/"*.xml "$out/config/snapshot.xml"
python3 -c 'import sys; d = open(sys.argv[1], "rb").read()[2:].decode("utf-16-le"); open(sys.argv[2], "wb").write(d.encode())' \
	"$out/config/vm.xml" "$out/config/vm-utf8.xml"

# ---- settings ----
# The import settings impex writes for an export of the VM above, and a
# hand-written document with every kind of line.
"$impex" export --store "$st" "blog \303\251t\303\251" "$work/exported" >/dev/null
"$impex" import-settings --store "$st" "$work/exported" | sed "s|$work|/srv/seeds|g" >"$out/settings/defaults"
printf '# c\r\ncreate_copy = false\r\n  name =  a = b  \nresource.2.current = x\nresource.1.current = y\nresource.1.target =\nnetwork.1.source = LAN\nnetwork.1.target = \n' >"$out/settings/hand"

# ---- journal ----
# A journal as an import writes it (core/journal.h): the seeds' own files, by device and inode.
{
	echo "impex-journal 1"
	find "$work" -maxdepth 3 -type f | head -n 8 | while read -r f; do
		stat -c '%d %i %n' "$f"
	done | sed "s|$work|/srv/seeds|g"
} >"$out/journal/import"
printf 'impex-journal 1\n1 2 /srv/a.vhd\n3 4 /srv/b (2).vhd\n5 6 /srv/cut' >"$out/journal/cut"

# ---- vhdx ----
python3 "$(dirname "$0")/vhdx-seeds.py" "$out/vhdx"

# ---- partition ----
python3 "$(dirname "$0")/partition-seeds.py" "$out/partition"
