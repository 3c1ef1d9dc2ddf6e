"""Build VHDX files byte by byte, from Microsoft's [MS-VHDX] specification
alone, so that tests do not trust impexfs's own reader to check itself.

`build()` returns an `Image`: the file's bytes (kept sparse, in 1 MiB pages,
so that a 64 TiB disk's 512 MiB BAT costs only the pages written), a map of
where each structure lies (`layout`), and the model of the disk the file
describes (`expected_runs`, `expected_bytes`), computed from what the test
asked for, never by reading the file back. Hooks then damage any field, with
or without fixing the checksums, before the image is saved:

    img = vhdxcraft.build(8 << 20, "dynamic", block_size=1 << 20,
                          writes=[(0, b"\\x11" * 512)])
    img.set_header(1, "version", 2)                      # checksum recomputed
    img.set_region(2, "checksum", 0, checksum=False)     # left wrong on purpose
    img.save("bad.vhdx")

Layout as built here (every structure 1 MiB aligned, as the format wants):
the header section (file identifier at 0, headers at 64 and 128 KiB, region
tables at 192 and 256 KiB), the log at 1 MiB, the metadata region (1 MiB:
the table, then the items from 64 KiB), the BAT region (whole MiB), the
payload blocks in block order, then the sector bitmap blocks in chunk order.
Integers are little-endian, GUIDs in Microsoft's layout, checksums CRC-32C
with the checksum field taken as zero.

Only the Python standard library is used.
"""

import struct
import uuid as uuidlib

KiB = 1024
MiB = 1024 * 1024
LOG_SECTOR = 4096
CHUNK_SECTORS = 1 << 23
HEADER_AT = (64 * KiB, 128 * KiB)
REGION_TABLE_AT = (192 * KiB, 256 * KiB)

# Payload block states ([MS-VHDX] 2.5.1.1) and sector bitmap block states (2.5.1.2).
NOT_PRESENT, UNDEFINED, ZERO, UNMAPPED, FULLY_PRESENT, PARTIALLY_PRESENT = 0, 1, 2, 3, 6, 7
SB_NOT_PRESENT, SB_PRESENT = 0, 6


def guid(text):
    """The 16 bytes of GUID @text in Microsoft's layout (first three fields little-endian)."""
    return uuidlib.UUID(text).bytes_le


def guid_text(raw):
    """"{xxxxxxxx-...}" in lower case for 16 bytes in Microsoft's layout."""
    return "{%s}" % uuidlib.UUID(bytes_le=bytes(raw))


def new_guid():
    return uuidlib.uuid4().bytes_le


REGION_BAT = guid("2DC27766-F623-4200-9D64-115E9BFD4A08")
REGION_METADATA = guid("8B7CA206-4790-4B9A-B8FE-575F050F886E")
ITEMS = {
    "file_parameters": guid("CAA16737-FA36-4D43-B3B6-33F0AA44E76B"),
    "disk_size": guid("2FA54224-CD1B-4876-B211-5DBED83BF4B8"),
    "disk_id": guid("BECA12AB-B2E6-4523-93EF-C309E000C746"),
    "logical_sector_size": guid("8141BF1D-A96F-4709-BA47-F233A8FAAB5F"),
    "physical_sector_size": guid("CDA348C7-445D-4471-9CC9-E9885251C556"),
    "parent_locator": guid("A8D35F2D-B30B-454D-ABF7-D3D84834AB0C"),
}
LOCATOR_TYPE_VHDX = guid("B04AEFB7-D19E-4A81-B789-25B8E9445913")
# Metadata entry flags: IsUser, IsVirtualDisk, IsRequired.
IS_USER, IS_VIRTUAL_DISK, IS_REQUIRED = 1, 2, 4
ITEM_FLAGS = {
    "file_parameters": IS_REQUIRED,
    "disk_size": IS_VIRTUAL_DISK | IS_REQUIRED,
    "disk_id": IS_VIRTUAL_DISK | IS_REQUIRED,
    "logical_sector_size": IS_VIRTUAL_DISK | IS_REQUIRED,
    "physical_sector_size": IS_VIRTUAL_DISK | IS_REQUIRED,
    "parent_locator": IS_REQUIRED,
}

# Field name: (offset, struct format), little-endian.
HEADER_FIELDS = {
    "signature": (0, "4s"),
    "checksum": (4, "<I"),
    "sequence_number": (8, "<Q"),
    "file_write_guid": (16, "16s"),
    "data_write_guid": (32, "16s"),
    "log_guid": (48, "16s"),
    "log_version": (64, "<H"),
    "version": (66, "<H"),
    "log_length": (68, "<I"),
    "log_offset": (72, "<Q"),
}
REGION_HEADER_FIELDS = {
    "signature": (0, "4s"),
    "checksum": (4, "<I"),
    "entry_count": (8, "<I"),
    "reserved": (12, "<I"),
}
REGION_ENTRY_FIELDS = {
    "guid": (0, "16s"),
    "file_offset": (16, "<Q"),
    "length": (24, "<I"),
    "required": (28, "<I"),
}
METADATA_HEADER_FIELDS = {
    "signature": (0, "8s"),
    "reserved": (8, "<H"),
    "entry_count": (10, "<H"),
}
METADATA_ENTRY_FIELDS = {
    "item_id": (0, "16s"),
    "offset": (16, "<I"),
    "length": (20, "<I"),
    "flags": (24, "<I"),
    "reserved2": (28, "<I"),
}
LOG_HEADER_FIELDS = {
    "signature": (0, "4s"),
    "checksum": (4, "<I"),
    "entry_length": (8, "<I"),
    "tail": (12, "<I"),
    "sequence_number": (16, "<Q"),
    "descriptor_count": (24, "<I"),
    "reserved": (28, "<I"),
    "log_guid": (32, "16s"),
    "flushed_file_offset": (48, "<Q"),
    "last_file_offset": (56, "<Q"),
}

# ---- CRC-32C (Castagnoli): reflected polynomial 0x82F63B78 ----


def _crc_table():
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ (0x82F63B78 if c & 1 else 0)
        table.append(c)
    return table


_TABLE = _crc_table()


def crc32c(data, crc=0):
    """CRC-32C of @data, continuing @crc (0 to start)."""
    c = crc ^ 0xFFFFFFFF
    table = _TABLE
    for b in data:
        c = (c >> 8) ^ table[(c ^ b) & 0xFF]
    return c ^ 0xFFFFFFFF


def _gf2_times(matrix, vector):
    total, i = 0, 0
    while vector:
        if vector & 1:
            total ^= matrix[i]
        vector >>= 1
        i += 1
    return total


def _gf2_square(matrix):
    return [_gf2_times(matrix, matrix[n]) for n in range(32)]


def _zeros_operator(length):
    """The 32x32 GF(2) matrix that appends @length zero bytes to a CRC register."""
    odd = [0x82F63B78] + [1 << (n - 1) for n in range(1, 32)]  # one zero bit
    op = None
    bits = length * 8
    power = odd
    while bits:
        if bits & 1:
            op = power if op is None else [_gf2_times(power, op[n]) for n in range(32)]
        bits >>= 1
        if bits:
            power = _gf2_square(power)
    return op


_APPEND_SECTOR = _zeros_operator(LOG_SECTOR)


def crc32c_sectors(sectors):
    """CRC-32C of the concatenation of 4 KiB @sectors, each distinct one checksummed
    once: CRC(a + b) = A(CRC(a)) ^ CRC(b), A the operator appending 4 KiB of zeros
    (as zlib's crc32_combine does for its polynomial)."""
    seen = {}
    crc = None
    for sector in sectors:
        key = bytes(sector)
        part = seen.get(key)
        if part is None:
            part = seen[key] = crc32c(key)
        crc = part if crc is None else _gf2_times(_APPEND_SECTOR, crc) ^ part
    return crc


# ---- a sparse byte store ----


class Sparse:
    """Bytes of a file in 1 MiB pages; pages never written read as zeros."""

    PAGE = MiB

    def __init__(self, size=0):
        self.pages = {}
        self.size = size

    def get(self, offset, length):
        out = bytearray()
        while length > 0:
            page, at = divmod(offset, self.PAGE)
            n = min(length, self.PAGE - at)
            data = self.pages.get(page)
            out += data[at:at + n] if data is not None else bytes(n)
            offset += n
            length -= n
        return bytes(out)

    def put(self, offset, data):
        data = bytes(data)
        self.size = max(self.size, offset + len(data))
        done = 0
        while done < len(data):
            page, at = divmod(offset + done, self.PAGE)
            n = min(len(data) - done, self.PAGE - at)
            buf = self.pages.get(page)
            if buf is None:
                if data[done:done + n] == bytes(n):
                    done += n
                    continue  # zeros over a hole: leave the hole
                buf = self.pages[page] = bytearray(self.PAGE)
            buf[at:at + n] = data[done:done + n]
            done += n

    def truncate(self, size):
        for page in [p for p in self.pages if p * self.PAGE >= size]:
            del self.pages[page]
        if size % self.PAGE and size // self.PAGE in self.pages:
            buf = self.pages[size // self.PAGE]
            buf[size % self.PAGE:] = bytes(self.PAGE - size % self.PAGE)
        self.size = size

    def save(self, path):
        with open(path, "wb") as f:
            f.truncate(self.size)
            for page in sorted(self.pages):
                data = self.pages[page]
                end = min(self.PAGE, self.size - page * self.PAGE)
                if end <= 0 or not any(data[:end]):
                    continue
                f.seek(page * self.PAGE)
                f.write(data[:end])


def _pack(fields, name, value):
    offset, fmt = fields[name]
    if isinstance(value, str):
        value = value.encode("latin-1")
    return offset, struct.pack(fmt, value)


# ---- structures ----


def header_bytes(sequence_number, file_write_guid, data_write_guid, log_guid, log_length,
                 log_offset, version=1, log_version=0, **fields):
    """A 4 KiB header with a correct checksum; extra keyword arguments set other fields."""
    raw = bytearray(4096)
    values = {
        "signature": b"head",
        "sequence_number": sequence_number,
        "file_write_guid": file_write_guid,
        "data_write_guid": data_write_guid,
        "log_guid": log_guid,
        "log_version": log_version,
        "version": version,
        "log_length": log_length,
        "log_offset": log_offset,
    }
    values.update(fields)
    for name, value in values.items():
        at, packed = _pack(HEADER_FIELDS, name, value)
        raw[at:at + len(packed)] = packed
    struct.pack_into("<I", raw, 4, crc32c(raw))
    return bytes(raw)


def region_table_bytes(entries):
    """A 64 KiB region table: @entries of (guid bytes, file offset, length, required)."""
    raw = bytearray(64 * KiB)
    raw[0:4] = b"regi"
    struct.pack_into("<I", raw, 8, len(entries))
    for i, (g, offset, length, required) in enumerate(entries):
        struct.pack_into("<16sQII", raw, 16 + 32 * i, g, offset, length, required)
    struct.pack_into("<I", raw, 4, crc32c(raw))
    return bytes(raw)


def _utf16(text):
    return text if isinstance(text, bytes) else text.encode("utf-16-le")


def locator_bytes(pairs, locator_type=LOCATOR_TYPE_VHDX):
    """A parent locator item: the header, one entry per (key, value), then the strings
    (UTF-16LE; bytes pass through as stored)."""
    pairs = list(pairs.items()) if isinstance(pairs, dict) else list(pairs)
    head = bytearray(locator_type + struct.pack("<HH", 0, len(pairs)))
    strings = bytearray()
    at = 20 + 12 * len(pairs)
    for key, value in pairs:
        k, v = _utf16(key), _utf16(value)
        head += struct.pack("<IIHH", at + len(strings), at + len(strings) + len(k), len(k),
                            len(v))
        strings += k + v
    return bytes(head + strings)


def log_entry(sequence_number, log_guid, descriptors, tail=0, flushed=None, last=None,
              tamper=None, checksum=True):
    """The bytes of one log entry ([MS-VHDX] 2.3.1).

    @descriptors: ("data", file offset, 4096 bytes) or ("zero", file offset, length).
    @tail is the log offset of the sequence's first entry. @flushed and @last are
    FlushedFileOffset and LastFileOffset (default 0 and 64 MiB: set them for the file).
    @tamper(raw), a function given the entry as a bytearray, changes it before the
    checksum is computed, or after when @checksum is False (left wrong unless it
    happens to match).
    """
    count = len(descriptors)
    desc_sectors = -(-(64 + 32 * count) // LOG_SECTOR)
    data = [d for d in descriptors if d[0] == "data"]
    raw = bytearray((desc_sectors + len(data)) * LOG_SECTOR)
    struct.pack_into("<4sIIIQII16sQQ", raw, 0, b"loge", 0, len(raw), tail, sequence_number,
                     count, 0, log_guid, flushed or 0, 64 * MiB if last is None else last)
    data_at = desc_sectors * LOG_SECTOR
    for i, d in enumerate(descriptors):
        at = 64 + 32 * i if i < 126 else LOG_SECTOR * (1 + (i - 126) // 128) + 32 * ((i - 126) % 128)
        if d[0] == "zero":
            struct.pack_into("<4sIQQQ", raw, at, b"zero", 0, d[2], d[1], sequence_number)
        else:
            sector = bytes(d[2])
            assert len(sector) == LOG_SECTOR
            struct.pack_into("<4s4s8sQQ", raw, at, b"desc", sector[4092:], sector[:8], d[1],
                             sequence_number)
            struct.pack_into("<4sI", raw, data_at, b"data", sequence_number >> 32)
            raw[data_at + 8:data_at + 4092] = sector[8:4092]
            struct.pack_into("<I", raw, data_at + 4092, sequence_number & 0xFFFFFFFF)
            data_at += LOG_SECTOR
    if tamper and checksum:
        tamper(raw)
    sectors = [raw[i:i + LOG_SECTOR] for i in range(0, len(raw), LOG_SECTOR)]
    struct.pack_into("<I", raw, 4, crc32c_sectors(sectors))
    if tamper and not checksum:
        tamper(raw)
    return bytes(raw)


def set_entry_field(raw, name, value):
    """Set field @name of the entry header in @raw (a bytearray): for tamper functions."""
    at, packed = _pack(LOG_HEADER_FIELDS, name, value)
    raw[at:at + len(packed)] = packed


# ---- images ----


class Image:
    """A built VHDX: `buf` (Sparse), `layout` (offsets of its structures: "log",
    "metadata", "items" by name, "bat", "blocks" by block, "bitmaps" by chunk), the
    parameters (size, kind, block_size, logical, physical, chunk_ratio, ...) and the
    model of the disk: `states` by block, `content` by block (bytes of the block as
    stored) and `present` by partially present block (its sectors held here)."""

    def __init__(self):
        self.buf = Sparse()
        self.layout = {}

    # ---- geometry ----

    @property
    def sectors_per_block(self):
        return self.block_size // self.logical

    def payload_index(self, block):
        return block + block // self.chunk_ratio

    def bitmap_index(self, chunk):
        return chunk * (self.chunk_ratio + 1) + self.chunk_ratio

    # ---- raw access ----

    def get(self, offset, length):
        return self.buf.get(offset, length)

    def put(self, offset, data):
        """Overwrite bytes at @offset (the file grows if needed)."""
        self.buf.put(offset, data)

    def truncate(self, size):
        self.buf.truncate(size)

    @property
    def file_size(self):
        return self.buf.size

    def save(self, path):
        """Write the image to @path (replacing it; holes stay holes) and return @path."""
        self.buf.save(path)
        return path

    def _set(self, fields, base, name, value):
        at, packed = _pack(fields, name, value)
        self.put(base + at, packed)

    def _get(self, fields, base, name):
        at, fmt = fields[name]
        return struct.unpack(fmt, self.get(base + at, struct.calcsize(fmt)))[0]

    # ---- headers ----

    def _fix_crc(self, base, size):
        raw = bytearray(self.get(base, size))
        raw[4:8] = bytes(4)
        self.put(base + 4, struct.pack("<I", crc32c(raw)))

    def header_field(self, which, name):
        return self._get(HEADER_FIELDS, HEADER_AT[which - 1], name)

    def set_header(self, which, name, value, checksum=True):
        """Set field @name of header @which (1, 2 or "both"); recompute its checksum
        unless told not to (setting "checksum" itself never does)."""
        for w in (1, 2) if which == "both" else (which,):
            self._set(HEADER_FIELDS, HEADER_AT[w - 1], name, value)
            if checksum and name != "checksum":
                self._fix_crc(HEADER_AT[w - 1], 4096)

    # ---- region tables ----

    def set_region_header(self, which, name, value, checksum=True):
        for w in (1, 2) if which == "both" else (which,):
            self._set(REGION_HEADER_FIELDS, REGION_TABLE_AT[w - 1], name, value)
            if checksum and name != "checksum":
                self._fix_crc(REGION_TABLE_AT[w - 1], 64 * KiB)

    def set_region(self, which, index, name, value, checksum=True):
        """Set field @name of entry @index of region table @which (1, 2 or "both")."""
        for w in (1, 2) if which == "both" else (which,):
            self._set(REGION_ENTRY_FIELDS, REGION_TABLE_AT[w - 1] + 16 + 32 * index, name, value)
            if checksum:
                self._fix_crc(REGION_TABLE_AT[w - 1], 64 * KiB)

    def region_field(self, which, index, name):
        return self._get(REGION_ENTRY_FIELDS, REGION_TABLE_AT[which - 1] + 16 + 32 * index, name)

    def fix_checksums(self):
        """Recompute the checksums of both headers and both region tables."""
        for at in HEADER_AT:
            self._fix_crc(at, 4096)
        for at in REGION_TABLE_AT:
            self._fix_crc(at, 64 * KiB)

    # ---- metadata ----

    def set_metadata_header(self, name, value):
        self._set(METADATA_HEADER_FIELDS, self.layout["metadata"], name, value)

    def metadata_entry_at(self, item):
        """File offset of the table entry of @item (a name of ITEMS or an index)."""
        index = item if isinstance(item, int) else self.layout["item_index"][item]
        return self.layout["metadata"] + 32 + 32 * index

    def set_metadata_entry(self, item, name, value):
        self._set(METADATA_ENTRY_FIELDS, self.metadata_entry_at(item), name, value)

    def item_offset(self, item):
        """File offset of the data of metadata item @item."""
        return self.layout["items"][item][0]

    def set_item(self, item, raw):
        """Overwrite the data of item @item in place (its length in the table unchanged)."""
        self.put(self.item_offset(item), raw)

    # ---- the BAT ----

    def bat_entry(self, index):
        return struct.unpack("<Q", self.get(self.layout["bat"] + 8 * index, 8))[0]

    def set_bat(self, index, state, offset=0, reserved=0):
        """Set BAT entry @index: @state, @offset in bytes (a whole MiB), bits 3-19 @reserved."""
        value = (state & 7) | (reserved << 3) | ((offset >> 20) << 20)
        self.put(self.layout["bat"] + 8 * index, struct.pack("<Q", value))

    # ---- the log ----

    def write_log(self, entries, log_guid=None, header="both"):
        """Put @entries, (log offset, entry bytes), into the log (wrapping at its end)
        and name @log_guid (default: a new one) in the headers. Returns the LogGuid."""
        log_guid = log_guid or new_guid()
        log_offset, log_length = self.layout["log"]
        for at, raw in entries:
            for i in range(0, len(raw), LOG_SECTOR):
                self.put(log_offset + (at + i) % log_length, raw[i:i + LOG_SECTOR])
        self.set_header(header, "log_guid", log_guid)
        return log_guid

    def sectors_of(self, offsets):
        """The current 4 KiB file sectors at @offsets, as ("data", offset, bytes) descriptors."""
        return [("data", off, self.get(off, LOG_SECTOR)) for off in offsets]

    def dirty(self, offsets, old=None, sequence=1, log_at=0, log_guid=None, **entry):
        """Move the current content of the file sectors at @offsets into one log entry at
        log offset @log_at: the image (and its model) stays what the log makes of the
        file, while the file holds @old[offset] (default zeros) there. Returns the
        entry's bytes."""
        descriptors = self.sectors_of(offsets)
        entry.setdefault("flushed", self.file_size // MiB * MiB)
        entry.setdefault("last", -(-self.file_size // MiB) * MiB)
        log_guid = log_guid or new_guid()
        raw = log_entry(sequence, log_guid, descriptors, tail=log_at, **entry)
        for off in offsets:
            self.put(off, (old or {}).get(off, bytes(LOG_SECTOR)))
        self.write_log([(log_at, raw)], log_guid)
        return raw

    # ---- the model ----

    def _block_kind(self, block):
        state = self.states.get(block, NOT_PRESENT)
        if state == FULLY_PRESENT:
            return "here"
        if state == PARTIALLY_PRESENT:
            return "bitmap"
        if state == NOT_PRESENT and self.kind == "differencing":
            return "parent"
        return "zero"

    def expected_runs(self, first=0, count=None):
        """The runs of logical sectors [first, first+count) as this file alone reads:
        [(start, sectors, kind, file offset or None)], kind "here", "zero" or "parent",
        adjacent runs of one kind merged (stored runs only when adjacent in the file)."""
        total = self.size // self.logical
        count = total - first if count is None else count
        spb = self.sectors_per_block
        runs = []

        def add(start, n, kind, offset):
            if runs:
                s, m, k, o = runs[-1]
                if k == kind and s + m == start and (
                        kind != "here" or o + m * self.logical == offset):
                    runs[-1] = (s, m + n, k, o)
                    return
            runs.append((start, n, kind, offset))

        sector, end = first, first + count
        while sector < end:
            block, in_block = divmod(sector, spb)
            n = min(spb - in_block, end - sector)
            kind = self._block_kind(block)
            if kind == "bitmap":
                present = self.present.get(block, set())
                for i in range(in_block, in_block + n):
                    if i in present:
                        add(sector + i - in_block, 1, "here",
                            self.layout["blocks"][block] + i * self.logical)
                    else:
                        add(sector + i - in_block, 1, "parent", None)
            elif kind == "here":
                add(sector, n, "here", self.layout["blocks"][block] + in_block * self.logical)
            else:
                add(sector, n, kind, None)
            sector += n
        return runs

    def expected_bytes(self, offset=0, length=None):
        """Disk content at [offset, offset+length) as this file alone reads it: the
        parent's sectors as zeros."""
        length = self.size - offset if length is None else length
        out = bytearray(length)
        for start, n, kind, _ in self.expected_runs(offset // self.logical,
                                                    length // self.logical):
            if kind != "here":
                continue
            s, end = start, start + n
            while s < end:  # the run's part in each block, copied at once
                block, in_block = divmod(s, self.sectors_per_block)
                m = min(self.sectors_per_block - in_block, end - s)
                at = s * self.logical - offset
                out[at:at + m * self.logical] = self.content[block][
                    in_block * self.logical:(in_block + m) * self.logical]
                s += m
        return bytes(out)


def build(size, kind="dynamic", block_size=None, logical=512, physical=4096, writes=(),
          states=None, stale=None, locator=None, disk_id=None, data_write_guid=None,
          file_write_guid=None, log_length=MiB, all_bitmaps=False, extra_regions=(),
          extra_items=(), creator="vhdxcraft"):
    """A VHDX of @size bytes: @kind "fixed" (LeaveBlockAllocated, every block fully
    present), "dynamic" or "differencing" (HasParent), payload blocks of @block_size
    bytes (default: Hyper-V's 32 MiB dynamic, 2 MiB otherwise), @logical and
    @physical sector sizes.

    @writes: (disk byte offset, bytes) in whole logical sectors. A block they touch is
    fully present in a fixed or dynamic disk (unwritten sectors zeros), partially
    present in a differencing one with a sector bitmap bit for each sector written.
    @states {block: state} overrides a block's state: FULLY_PRESENT stores the block
    whole (zeros where not written), PARTIALLY_PRESENT with no writes has an empty
    bitmap, others drop the block's data. @stale {block: bytes}: give an UNDEFINED or
    UNMAPPED block a file offset holding these bytes (which must never be read).
    @locator: the parent locator's (key, value) pairs (a dict or a list; bytes stored as
    they are), default for a differencing disk parent_linkage and relative_path.
    @all_bitmaps: give every chunk of a differencing disk a sector bitmap block.
    @extra_regions: more (guid, offset, length, required) region table entries.
    @extra_items: more (guid, flags, bytes) metadata items.
    """
    img = Image()
    has_parent = kind == "differencing"
    if block_size is None:
        block_size = 32 * MiB if kind == "dynamic" else 2 * MiB
    img.size, img.kind, img.block_size = size, kind, block_size
    img.logical, img.physical = logical, physical
    img.chunk_ratio = ratio = CHUNK_SECTORS * logical // block_size
    spb = block_size // logical
    img.block_count = blocks = -(-size // block_size)
    img.chunk_count = chunks = -(-blocks // ratio)
    img.bat_entries = chunks * (ratio + 1) if has_parent else blocks + (blocks - 1) // ratio
    img.disk_id = disk_id or new_guid()
    img.data_write_guid = data_write_guid or new_guid()
    img.file_write_guid = file_write_guid or new_guid()

    # The model: what each block holds.
    img.states, img.content, img.present = {}, {}, {}
    for offset, data in writes:
        if offset % logical or len(data) % logical or offset + len(data) > size:
            raise ValueError("writes must be whole logical sectors inside the disk")
        for i in range(0, len(data), logical):
            block, in_block = divmod((offset + i) // logical, spb)
            buf = img.content.get(block)
            if buf is None:  # not setdefault: a 32 MiB block is not made per sector
                buf = img.content[block] = bytearray(block_size)
            buf[in_block * logical:(in_block + 1) * logical] = data[i:i + logical]
            img.present.setdefault(block, set()).add(in_block)
    for block in img.content:
        img.states[block] = PARTIALLY_PRESENT if has_parent else FULLY_PRESENT
    if kind == "fixed":
        for block in range(blocks):
            img.states[block] = FULLY_PRESENT
            img.content.setdefault(block, bytearray(block_size))
    for block, state in (states or {}).items():
        img.states[block] = state
        if state in (FULLY_PRESENT, PARTIALLY_PRESENT):
            img.content.setdefault(block, bytearray(block_size))
        else:
            img.content.pop(block, None)
            img.present.pop(block, None)
        if state == FULLY_PRESENT:
            img.present.pop(block, None)
    stale = stale or {}
    for block in stale:
        img.states.setdefault(block, UNDEFINED)

    # Layout.
    at = MiB
    img.layout["log"] = (at, log_length)
    at += log_length
    img.layout["metadata"] = at
    at += MiB
    bat_length = max(1, -(-img.bat_entries * 8 // MiB)) * MiB
    img.layout["bat"] = at
    img.layout["bat_length"] = bat_length
    at += bat_length
    img.layout["blocks"] = {}
    for block in sorted(set(img.content) | set(stale)):
        img.layout["blocks"][block] = at
        at += block_size
    img.layout["bitmaps"] = {}
    for chunk in range(chunks):
        partial = [b for b, s in img.states.items()
                   if s == PARTIALLY_PRESENT and b // ratio == chunk]
        if has_parent and (partial or all_bitmaps):
            img.layout["bitmaps"][chunk] = at
            at += MiB
    for g, offset, length, _ in extra_regions:
        at = max(at, offset + length)
    img.buf.size = at

    # File identifier, headers, region tables.
    img.put(0, b"vhdxfile" + creator.encode("utf-16-le"))
    log_offset = img.layout["log"][0]
    for i, seq in enumerate((1, 2)):
        img.put(HEADER_AT[i], header_bytes(seq, img.file_write_guid, img.data_write_guid,
                                           bytes(16), log_length, log_offset))
    regions = [(REGION_BAT, img.layout["bat"], bat_length, 1),
               (REGION_METADATA, img.layout["metadata"], MiB, 1)] + list(extra_regions)
    for at_table in REGION_TABLE_AT:
        img.put(at_table, region_table_bytes(regions))

    # Metadata: the table, then the items from 64 KiB.
    item_data = [
        ("file_parameters",
         struct.pack("<II", block_size, (1 if kind == "fixed" else 0) | (2 if has_parent else 0))),
        ("disk_size", struct.pack("<Q", size)),
        ("disk_id", img.disk_id),
        ("logical_sector_size", struct.pack("<I", logical)),
        ("physical_sector_size", struct.pack("<I", physical)),
    ]
    if has_parent or locator is not None:
        if locator is None:
            locator = [("parent_linkage", guid_text(new_guid())),
                       ("relative_path", ".\\parent.vhdx")]
        item_data.append(("parent_locator", locator_bytes(locator)))
    entries = [(ITEMS[name], ITEM_FLAGS[name], data) for name, data in item_data]
    entries += list(extra_items)
    base = img.layout["metadata"]
    table = bytearray(b"metadata" + struct.pack("<HH", 0, len(entries)) + bytes(20))
    img.layout["items"], img.layout["item_index"] = {}, {}
    item_at = 64 * KiB
    for index, (g, flags, data) in enumerate(entries):
        table += struct.pack("<16sIIII", g, item_at, len(data), flags, 0)
        name = next((n for n, v in ITEMS.items() if v == g), guid_text(g))
        img.layout["items"][name] = (base + item_at, len(data))
        img.layout["item_index"][name] = index
        img.put(base + item_at, data)
        item_at += -(-len(data) // 8) * 8 or 8
    img.put(base, table)

    # Blocks, bitmaps, the BAT.
    for block, offset in img.layout["blocks"].items():
        if block in img.content:
            img.put(offset, img.content[block])
            img.set_bat(img.payload_index(block), img.states[block], offset)
        else:
            img.put(offset, stale[block])
            img.set_bat(img.payload_index(block), img.states[block], offset)
    for block, state in img.states.items():
        if block not in img.layout["blocks"]:
            img.set_bat(img.payload_index(block), state)
    for chunk, offset in img.layout["bitmaps"].items():
        bitmap = bytearray(MiB)
        for block, present in img.present.items():
            if block // ratio != chunk or img.states.get(block) != PARTIALLY_PRESENT:
                continue
            for in_block in present:
                bit = (block % ratio) * spb + in_block
                bitmap[bit // 8] |= 1 << (bit % 8)  # least significant bit first
        img.put(offset, bitmap)
        img.set_bat(img.bitmap_index(chunk), SB_PRESENT, offset)
    return img
