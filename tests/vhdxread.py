"""Read VHDX files in Python, from Microsoft's [MS-VHDX] specification alone,
so that tests judge what impexfs writes with a reader that shares no code with
it (QEMU 7.2 refuses 4096-byte logical sectors and ignores parents; libvhdi
has its own faults, see docs/VHDX.md).

    disk = vhdxread.VhdxFile("child.avhdx")
    disk.headers[disk.current]["data_write_guid"], disk.locator["parent_linkage"]
    disk.read(0, disk.size, parent=vhdxread.VhdxFile("base.vhdx"))

A file whose log is not empty is read as the log leaves it (replayed in
memory: the active sequence of [MS-VHDX] 2.3.3, from the head's Tail to the
head). Strict: anything malformed raises VhdxError. Standard library only
(and vhdxcraft's CRC-32C).
"""

import struct
import uuid

import vhdxcraft

MiB = 1024 * 1024
SECTOR = 4096
NOT_PRESENT, FULLY_PRESENT, PARTIALLY_PRESENT = 0, 6, 7
SB_PRESENT = 6


class VhdxError(Exception):
    pass


def guid_text(raw):
    return "{%s}" % uuid.UUID(bytes_le=bytes(raw))


def _crc_ok(raw, at=4):
    stored = struct.unpack_from("<I", raw, at)[0]
    raw = bytearray(raw)
    raw[at:at + 4] = bytes(4)
    return vhdxcraft.crc32c(raw) == stored


class VhdxFile:
    def __init__(self, path):
        self.path = path
        with open(path, "rb") as f:
            self.raw = f.read()
        self.overlay = {}  # file offset of a 4 KiB sector: its bytes after the log
        self.file_size = len(self.raw)
        if self.raw[:8] != b"vhdxfile":
            raise VhdxError("no vhdxfile signature")
        self.creator = self.raw[8:520].decode("utf-16-le").split("\0")[0]
        self._headers()
        self.log_entries = []
        if self.header["log_guid"] != bytes(16):
            self._replay()
        self._regions()
        self._metadata()
        spb = self.block_size // self.logical
        self.sectors_per_block = spb
        self.chunk_ratio = (1 << 23) * self.logical // self.block_size
        self.block_count = -(-self.size // self.block_size)

    # ---- bytes of the file, as the log leaves them ----

    def get(self, offset, length):
        out = self.raw[offset:offset + length]
        if len(out) < length:
            out += bytes(length - len(out))
        if not self.overlay:
            return out
        out = bytearray(out)
        first = offset // SECTOR * SECTOR
        for at in sorted(self.overlay):
            if at < first or at >= offset + length:
                continue
            data = self.overlay[at]
            lo, hi = max(at, offset), min(at + SECTOR, offset + length)
            out[lo - offset:hi - offset] = data[lo - at:hi - at]
        return bytes(out)

    # ---- headers ----

    def _headers(self):
        self.headers = {}
        for which, at in ((1, 64 * 1024), (2, 128 * 1024)):
            raw = self.raw[at:at + 4096]
            if raw[:4] != b"head" or not _crc_ok(raw):
                continue
            seq, fwg, dwg, lg, logv, ver, loglen, logoff = struct.unpack_from(
                "<Q16s16s16sHHIQ", raw, 8)
            self.headers[which] = {"sequence_number": seq, "file_write_guid": guid_text(fwg),
                                   "data_write_guid": guid_text(dwg), "log_guid": lg,
                                   "log_version": logv, "version": ver, "log_length": loglen,
                                   "log_offset": logoff, "raw": raw}
        if not self.headers:
            raise VhdxError("no valid header")
        self.current = max(self.headers, key=lambda w: self.headers[w]["sequence_number"])
        if len(self.headers) == 2 and self.headers[1]["sequence_number"] == \
                self.headers[2]["sequence_number"] and self.headers[1]["raw"] != \
                self.headers[2]["raw"]:
            raise VhdxError("two different headers of one sequence number")
        self.header = self.headers[self.current]
        if self.header["version"] != 1:
            raise VhdxError("version %d" % self.header["version"])

    # ---- the log ----

    def _entry(self, pos):
        """The valid entry at log sector @pos, as (seq, sectors, tail, descriptors, head
        fields), or None."""
        h = self.header
        total = h["log_length"] // SECTOR

        def sector(i):
            at = h["log_offset"] + ((pos + i) % total) * SECTOR
            return self.raw[at:at + SECTOR]

        first = sector(0)
        if first[:4] != b"loge" or first[32:48] != h["log_guid"]:
            return None
        (_, checksum, length, tail, seq, count, _, _, flushed, last) = struct.unpack_from(
            "<4sIIIQII16sQQ", first, 0)
        if length == 0 or length % SECTOR or length > h["log_length"] or seq == 0:
            return None
        n = length // SECTOR
        raw = bytearray(b"".join(sector(i) for i in range(n)))
        stored = checksum
        raw[4:8] = bytes(4)
        if vhdxcraft.crc32c_sectors([raw[i:i + SECTOR] for i in range(0, len(raw), SECTOR)]) \
                != stored:
            return None
        desc_sectors = -(-(64 + 32 * count) // SECTOR)
        descs, data_at = [], desc_sectors
        for i in range(count):
            at = 64 + 32 * i if i < 126 else SECTOR * (1 + (i - 126) // 128) + \
                32 * ((i - 126) % 128)
            d = raw[at:at + 32]
            if struct.unpack_from("<Q", d, 24)[0] != seq:
                return None
            if d[:4] == b"zero":
                descs.append(("zero", struct.unpack_from("<Q", d, 16)[0],
                              struct.unpack_from("<Q", d, 8)[0]))
            elif d[:4] == b"desc":
                s = raw[data_at * SECTOR:(data_at + 1) * SECTOR]
                if s[:4] != b"data" or struct.unpack_from("<I", s, 4)[0] != seq >> 32 or \
                        struct.unpack_from("<I", s, SECTOR - 4)[0] != seq & 0xFFFFFFFF:
                    return None
                content = bytes(d[8:16]) + bytes(s[8:SECTOR - 4]) + bytes(d[4:8])
                descs.append(("data", struct.unpack_from("<Q", d, 16)[0], content))
                data_at += 1
            else:
                return None
        if data_at != n:
            return None
        return seq, n, tail // SECTOR, descs, flushed, last

    def _replay(self):
        h = self.header
        total = h["log_length"] // SECTOR
        entries = {pos: self._entry(pos) for pos in range(total)}
        best = None
        for start in range(total):
            chain, pos, used = [], start, 0
            while entries.get(pos) and used + entries[pos][1] <= total and (
                    not chain or entries[pos][0] == entries[chain[-1]][0] + 1):
                chain.append(pos)
                used += entries[pos][1]
                pos = (pos + entries[pos][1]) % total
            if not chain:
                continue
            head = entries[chain[-1]]
            if head[2] not in chain:
                continue
            if best is None or head[0] > best[0]:
                best = (head[0], chain[chain.index(head[2]):])
        if best is None:
            raise VhdxError("a log to replay without a valid sequence")
        for pos in best[1]:
            seq, n, tail, descs, flushed, last = entries[pos]
            self.log_entries.append(entries[pos])
            for d in descs:
                if d[0] == "zero":
                    for at in range(d[1], d[1] + d[2], SECTOR):
                        self.overlay[at] = bytes(SECTOR)
                else:
                    self.overlay[d[1]] = d[2]
        head = entries[best[1][-1]]
        if head[4] > len(self.raw):
            raise VhdxError("truncated: FlushedFileOffset past the end")
        self.file_size = max(self.file_size, head[5], *(o + SECTOR for o in self.overlay))

    # ---- regions and metadata ----

    def _regions(self):
        for at in (192 * 1024, 256 * 1024):
            raw = self.get(at, 64 * 1024)
            if raw[:4] == b"regi" and _crc_ok(raw):
                break
        else:
            raise VhdxError("no valid region table")
        self.regions = {}
        for i in range(struct.unpack_from("<I", raw, 8)[0]):
            g, offset, length, required = struct.unpack_from("<16sQII", raw, 16 + 32 * i)
            self.regions[guid_text(g).upper()] = (offset, length, required)
        self.bat_offset, self.bat_length, _ = self.regions[
            "{2DC27766-F623-4200-9D64-115E9BFD4A08}"]
        self.metadata_offset, self.metadata_length, _ = self.regions[
            "{8B7CA206-4790-4B9A-B8FE-575F050F886E}"]

    def _metadata(self):
        base = self.metadata_offset
        table = self.get(base, 64 * 1024)
        if table[:8] != b"metadata":
            raise VhdxError("no metadata signature")
        self.items = {}
        for i in range(struct.unpack_from("<H", table, 10)[0]):
            g, offset, length, flags = struct.unpack_from("<16sIII", table, 32 + 32 * i)
            self.items[guid_text(g).upper()] = (self.get(base + offset, length), flags, offset)

        def item(g):
            return self.items["{%s}" % g][0]

        self.block_size, bits = struct.unpack("<II", item("CAA16737-FA36-4D43-B3B6-33F0AA44E76B"))
        self.leave_allocated, self.has_parent = bool(bits & 1), bool(bits & 2)
        self.size = struct.unpack("<Q", item("2FA54224-CD1B-4876-B211-5DBED83BF4B8"))[0]
        self.disk_id = guid_text(item("BECA12AB-B2E6-4523-93EF-C309E000C746"))
        self.logical = struct.unpack("<I", item("8141BF1D-A96F-4709-BA47-F233A8FAAB5F"))[0]
        self.physical = struct.unpack("<I", item("CDA348C7-445D-4471-9CC9-E9885251C556"))[0]
        self.locator = None
        key = "{A8D35F2D-B30B-454D-ABF7-D3D84834AB0C}"
        if key in self.items:
            raw = self.items[key][0]
            if guid_text(raw[:16]).upper() != "{B04AEFB7-D19E-4A81-B789-25B8E9445913}":
                raise VhdxError("not a VHDX parent locator")
            self.locator = {}
            self.locator_order = []
            for i in range(struct.unpack_from("<H", raw, 18)[0]):
                ko, vo, kl, vl = struct.unpack_from("<IIHH", raw, 20 + 12 * i)
                k = raw[ko:ko + kl].decode("utf-16-le")
                self.locator[k] = raw[vo:vo + vl].decode("utf-16-le")
                self.locator_order.append(k)

    # ---- the BAT ----

    def bat(self, index):
        value = struct.unpack("<Q", self.get(self.bat_offset + 8 * index, 8))[0]
        return value & 7, (value >> 20) << 20

    def block_entry(self, block):
        return self.bat(block + block // self.chunk_ratio)

    def bitmap_entry(self, chunk):
        return self.bat(chunk * (self.chunk_ratio + 1) + self.chunk_ratio)

    def sector_bit(self, sector):
        """The sector bitmap bit of @sector (least significant bit first)."""
        chunk_sectors = self.chunk_ratio * self.sectors_per_block
        state, at = self.bitmap_entry(sector // chunk_sectors)
        if state != SB_PRESENT:
            raise VhdxError("a partially present block without its chunk's bitmap")
        bit = sector % chunk_sectors
        return bool(self.get(at + bit // 8, 1)[0] & (1 << (bit % 8)))

    def runs(self):
        """[(first sector, count, kind, file offset)] of the whole disk, kind "here",
        "zero" or "parent"; adjacent runs of a kind merged (stored runs when adjacent)."""
        out = []
        spb, total = self.sectors_per_block, self.size // self.logical

        def add(start, n, kind, offset):
            if out:
                s, m, k, o = out[-1]
                if k == kind and s + m == start and (
                        kind != "here" or o + m * self.logical == offset):
                    out[-1] = (s, m + n, k, o)
                    return
            out.append((start, n, kind, offset))

        for block in range(self.block_count):
            first = block * spb
            n = min(spb, total - first)
            state, at = self.block_entry(block)
            if state == FULLY_PRESENT:
                add(first, n, "here", at)
            elif state == PARTIALLY_PRESENT:
                if not self.has_parent:
                    raise VhdxError("partially present block %d without a parent" % block)
                for i in range(n):
                    if self.sector_bit(first + i):
                        add(first + i, 1, "here", at + i * self.logical)
                    else:
                        add(first + i, 1, "parent", None)
            elif state == NOT_PRESENT and self.has_parent:
                add(first, n, "parent", None)
            else:
                add(first, n, "zero", None)
        return out

    def read(self, offset=0, length=None, parent=None):
        """The disk's bytes; the parent's sectors from @parent (a VhdxFile or a function
        (offset, length) -> bytes), zeros without one."""
        length = self.size - offset if length is None else length
        out = bytearray(length)
        for start, n, kind, at in self.runs():
            lo, hi = max(start * self.logical, offset), min((start + n) * self.logical,
                                                            offset + length)
            if lo >= hi:
                continue
            if kind == "here":
                out[lo - offset:hi - offset] = self.get(at + lo - start * self.logical, hi - lo)
            elif kind == "parent" and parent is not None:
                out[lo - offset:hi - offset] = parent.read(lo, hi - lo) if isinstance(
                    parent, VhdxFile) else parent(lo, hi - lo)
        return bytes(out)
