"""Build VHD files byte by byte, from Microsoft's "Virtual Hard Disk Image
Format Specification" 1.0 alone, so that tests do not trust impexfs's own
encoder to check its decoder.

A build function returns an `Image`: the file's bytes and a map of where
each structure lies. Hooks then damage any field, with or without fixing the
checksums afterwards, before the image is saved:

    img = vhdcraft.dynamic(8 << 20, writes=[(0, b"\\x11" * 512)])
    img.set_header("block_size", 3 << 20)             # checksum recomputed
    img.set_footer("checksum", 0, checksum=False)     # left wrong on purpose
    img.save("bad.vhd")

Layout of a dynamic or differencing image as built here: a copy of the footer
at 0, the dynamic header at 512, the BAT at 1536 (padded to whole sectors),
the parent locators' data (one whole sector or more each), the blocks (sector
bitmap then data), the footer in the last 512 bytes. All integers are
big-endian; checksums are the one's complement of the byte sum with the
checksum field taken as zero.

Only the Python standard library is used.
"""

import struct
import urllib.parse
import uuid as uuidlib

SECTOR = 512
FOOTER_SIZE = 512
HEADER_SIZE = 1024
UNALLOCATED = 0xFFFFFFFF
DEFAULT_BLOCK = 2 * 1024 * 1024

FIXED, DYNAMIC, DIFFERENCING = 2, 3, 4

# VHD timestamps count seconds from 2000-01-01 00:00:00 UTC.
VHD_EPOCH = 946684800
DEFAULT_TIMESTAMP = 0x2A000000  # mid-2022, fixed so that images are reproducible

# Field name: (offset, struct format). Formats are big-endian.
FOOTER_FIELDS = {
    "cookie": (0, "8s"),
    "features": (8, ">I"),
    "version": (12, ">I"),
    "data_offset": (16, ">Q"),
    "timestamp": (24, ">I"),
    "creator_app": (28, "4s"),
    "creator_version": (32, ">I"),
    "creator_os": (36, "4s"),
    "original_size": (40, ">Q"),
    "current_size": (48, ">Q"),
    "cylinders": (56, ">H"),
    "heads": (58, "B"),
    "sectors_per_track": (59, "B"),
    "disk_type": (60, ">I"),
    "checksum": (64, ">I"),
    "uuid": (68, "16s"),
    "saved_state": (84, "B"),
}
FOOTER_CHECKSUM_AT = 64

HEADER_FIELDS = {
    "cookie": (0, "8s"),
    "data_offset": (8, ">Q"),
    "table_offset": (16, ">Q"),
    "version": (24, ">I"),
    "max_table_entries": (28, ">I"),
    "block_size": (32, ">I"),
    "checksum": (36, ">I"),
    "parent_uuid": (40, "16s"),
    "parent_timestamp": (56, ">I"),
    "parent_name": (64, "512s"),
}
HEADER_CHECKSUM_AT = 36
LOCATORS_AT = 576  # 8 entries of 24 bytes

# Fields of one parent locator entry, relative to the entry.
LOCATOR_FIELDS = {
    "code": (0, "4s"),
    "data_space": (4, ">I"),
    "data_length": (8, ">I"),
    "reserved": (12, ">I"),
    "data_offset": (16, ">Q"),
}
LOCATOR_ENTRY_SIZE = 24


def checksum(raw, checksum_at):
    """One's complement of the byte sum of @raw, the 4 bytes at @checksum_at counted as zero."""
    total = sum(raw) - sum(raw[checksum_at:checksum_at + 4])
    return ~total & 0xFFFFFFFF


def geometry(size):
    """(cylinders, heads, sectors per track) for @size bytes, by the specification's algorithm."""
    total = min(size // SECTOR, 65535 * 16 * 255)
    if total >= 65535 * 16 * 63:
        spt, heads = 255, 16
        cth = total // spt
    else:
        spt = 17
        cth = total // spt
        heads = max((cth + 1023) // 1024, 4)
        if cth >= heads * 1024 or heads > 16:
            spt, heads = 31, 16
            cth = total // spt
        if cth >= heads * 1024:
            spt, heads = 63, 16
            cth = total // spt
    return cth // heads, heads, spt


def bitmap_size(block_size):
    """Bytes of the sector bitmap in front of a block: one bit a sector, whole sectors."""
    bits_bytes = max(block_size // SECTOR // 8, 1)
    return -(-bits_bytes // SECTOR) * SECTOR


def _pad(data, unit=SECTOR):
    return data + bytes(-len(data) % unit)


def _put(raw, fields, name, value, base=0):
    offset, fmt = fields[name]
    if isinstance(value, str):
        value = value.encode("latin-1")
    struct.pack_into(fmt, raw, base + offset, value)


def footer(disk_type, size, uuid, data_offset=None, timestamp=DEFAULT_TIMESTAMP,
           creator_app=b"win ", creator_os=b"Wi2k", original_size=None, **fields):
    """A 512-byte footer with a correct checksum. Fixed disks get the data
    offset all ones, others 512. Extra keyword arguments set any other field
    of FOOTER_FIELDS before the checksum is computed."""
    raw = bytearray(FOOTER_SIZE)
    cylinders, heads, spt = geometry(size)
    values = {
        "cookie": b"conectix",
        "features": 2,
        "version": 0x00010000,
        "data_offset": data_offset if data_offset is not None else (
            0xFFFFFFFFFFFFFFFF if disk_type == FIXED else FOOTER_SIZE),
        "timestamp": timestamp,
        "creator_app": creator_app,
        "creator_version": 0x00060003,
        "creator_os": creator_os,
        "original_size": size if original_size is None else original_size,
        "current_size": size,
        "cylinders": cylinders,
        "heads": heads,
        "sectors_per_track": spt,
        "disk_type": disk_type,
        "uuid": uuid,
    }
    values.update(fields)
    for name, value in values.items():
        _put(raw, FOOTER_FIELDS, name, value)
    _put(raw, FOOTER_FIELDS, "checksum", checksum(raw, FOOTER_CHECKSUM_AT))
    return bytes(raw)


def header(table_offset, max_table_entries, block_size, parent_uuid=bytes(16),
           parent_timestamp=0, parent_name=b"", locators=(), **fields):
    """A 1024-byte dynamic disk header with a correct checksum.

    @parent_name is a str (stored UTF-16 big-endian, zero-padded) or raw bytes.
    @locators is a list of dicts with the LOCATOR_FIELDS keys.
    """
    raw = bytearray(HEADER_SIZE)
    if isinstance(parent_name, str):
        parent_name = parent_name.encode("utf-16-be")
    values = {
        "cookie": b"cxsparse",
        "data_offset": 0xFFFFFFFFFFFFFFFF,
        "table_offset": table_offset,
        "version": 0x00010000,
        "max_table_entries": max_table_entries,
        "block_size": block_size,
        "parent_uuid": parent_uuid,
        "parent_timestamp": parent_timestamp,
        "parent_name": parent_name,
    }
    values.update(fields)
    for name, value in values.items():
        _put(raw, HEADER_FIELDS, name, value)
    for i, entry in enumerate(locators):
        for name, value in entry.items():
            _put(raw, LOCATOR_FIELDS, name, value, LOCATORS_AT + i * LOCATOR_ENTRY_SIZE)
    _put(raw, HEADER_FIELDS, "checksum", checksum(raw, HEADER_CHECKSUM_AT))
    return bytes(raw)


def locator_data(code, path):
    """Encode @path as locator @code stores it: W2ru/W2ku (and Wi2r/Wi2k as
    UTF-16LE too here) for Windows paths, MacX as a UTF-8 file URL of an
    absolute path. Bytes pass through unchanged."""
    if isinstance(path, bytes):
        return path
    if code in ("W2ru", "W2ku"):
        return path.encode("utf-16-le")
    if code == "MacX":
        return ("file://" + urllib.parse.quote(path)).encode("utf-8")
    return path.encode("utf-8")


class Image:
    """A built VHD: `data` (a bytearray) and `layout`, the offsets of its
    structures: "footer", and for dynamic and differencing images
    "footer_copy", "header", "bat", "locators" (data offsets by index) and
    "blocks" (bitmap offsets by block number)."""

    def __init__(self, data, layout, disk_type):
        self.data = bytearray(data)
        self.layout = layout
        self.disk_type = disk_type

    # ---- reading fields back ----

    def _get(self, fields, name, base):
        offset, fmt = fields[name]
        return struct.unpack_from(fmt, self.data, base + offset)[0]

    def footer_field(self, name):
        return self._get(FOOTER_FIELDS, name, self.layout["footer"])

    def header_field(self, name):
        return self._get(HEADER_FIELDS, name, self.layout["header"])

    @property
    def uuid(self):
        """The 16 bytes of the footer's UUID."""
        return self.footer_field("uuid")

    # ---- damaging ----

    def set_footer(self, name, value, checksum=True, copy=True):
        """Set footer field @name in the trailing footer and, with @copy, in
        the copy at offset 0 of a dynamic or differencing image. With
        @checksum the checksums are recomputed; setting "checksum" itself
        never is."""
        places = [self.layout["footer"]]
        if copy and "footer_copy" in self.layout:
            places.append(self.layout["footer_copy"])
        for base in places:
            _put(self.data, FOOTER_FIELDS, name, value, base)
            if checksum and name != "checksum":
                self._fix(base, FOOTER_SIZE, FOOTER_CHECKSUM_AT)

    def set_header(self, name, value, checksum=True):
        """Set dynamic header field @name; recompute the checksum unless told not to."""
        base = self.layout["header"]
        _put(self.data, HEADER_FIELDS, name, value, base)
        if checksum and name != "checksum":
            self._fix(base, HEADER_SIZE, HEADER_CHECKSUM_AT)

    def set_locator(self, index, name, value, checksum=True):
        """Set field @name of parent locator entry @index (0-7) in the header."""
        base = self.layout["header"] + LOCATORS_AT + index * LOCATOR_ENTRY_SIZE
        _put(self.data, LOCATOR_FIELDS, name, value, base)
        if checksum:
            self._fix(self.layout["header"], HEADER_SIZE, HEADER_CHECKSUM_AT)

    def set_bat(self, block, value):
        """Set BAT entry @block (a sector number, or UNALLOCATED). The BAT has no checksum."""
        struct.pack_into(">I", self.data, self.layout["bat"] + 4 * block, value)

    def put(self, offset, raw):
        """Overwrite bytes at @offset, growing the image if needed."""
        end = offset + len(raw)
        if end > len(self.data):
            self.data.extend(bytes(end - len(self.data)))
        self.data[offset:end] = raw

    def truncate(self, size):
        """Cut the image to @size bytes."""
        del self.data[size:]

    def fix_checksums(self):
        """Recompute the footer and header checksums in place."""
        for key in ("footer", "footer_copy"):
            if key in self.layout:
                self._fix(self.layout[key], FOOTER_SIZE, FOOTER_CHECKSUM_AT)
        if "header" in self.layout:
            self._fix(self.layout["header"], HEADER_SIZE, HEADER_CHECKSUM_AT)

    def _fix(self, base, size, at):
        struct.pack_into(">I", self.data, base + at, checksum(self.data[base:base + size], at))

    def save(self, path):
        """Write the image to @path (replacing it) and return @path."""
        with open(path, "wb") as f:
            f.write(self.data)
        return path


def new_uuid():
    """A random UUID as 16 bytes."""
    return uuidlib.uuid4().bytes


def _sectors_of(writes, size):
    """{sector number: 512 bytes} from [(byte offset, bytes)] in whole sectors."""
    sectors = {}
    for offset, data in writes:
        if offset % SECTOR or len(data) % SECTOR or offset + len(data) > size:
            raise ValueError("writes must be whole sectors inside the disk")
        for i in range(0, len(data), SECTOR):
            sectors[(offset + i) // SECTOR] = bytes(data[i:i + SECTOR])
    return sectors


def fixed(size, writes=(), uuid=None, **footer_fields):
    """A fixed disk of @size bytes: the raw data then the footer. @writes is
    a list of (byte offset, bytes) in whole sectors; the rest reads as zeros."""
    data = bytearray(size)
    for sector, chunk in _sectors_of(writes, size).items():
        data[sector * SECTOR:(sector + 1) * SECTOR] = chunk
    data += footer(FIXED, size, uuid or new_uuid(), **footer_fields)
    return Image(data, {"footer": size}, FIXED)


def _sparse(disk_type, size, block_size, writes, uuid, parent, footer_fields):
    uuid = uuid or new_uuid()
    parent = parent or {}
    blocks = -(-size // block_size)
    bitmap_bytes = bitmap_size(block_size)
    sectors_per_block = block_size // SECTOR
    bat_at = FOOTER_SIZE + HEADER_SIZE
    end = bat_at + len(_pad(bytes(4 * blocks)))

    # Parent locators: each entry's data in whole sectors after the BAT.
    entries, chunks, located = [], [], {}
    for i, (code, path) in enumerate(parent.get("locators", ())):
        raw = locator_data(code, path)
        space = len(_pad(raw)) or SECTOR
        entries.append({"code": code, "data_space": space, "data_length": len(raw),
                        "data_offset": end})
        chunks.append(_pad(raw).ljust(space, b"\0"))
        located[i] = end
        end += space

    # Blocks: the sector bitmap (first sector of the block = MSB of byte 0), then the data.
    by_block = {}
    for sector, chunk in _sectors_of(writes, size).items():
        by_block.setdefault(sector // sectors_per_block, {})[sector % sectors_per_block] = chunk
    bat = [UNALLOCATED] * blocks
    block_at, block_bytes = {}, []
    for block in sorted(by_block):
        bitmap = bytearray(bitmap_bytes)
        data = bytearray(block_size)
        for index, chunk in by_block[block].items():
            bitmap[index // 8] |= 0x80 >> (index % 8)
            data[index * SECTOR:(index + 1) * SECTOR] = chunk
        bat[block] = end // SECTOR
        block_at[block] = end
        block_bytes.append(bytes(bitmap) + bytes(data))
        end += bitmap_bytes + block_size

    tail = footer(disk_type, size, uuid, **footer_fields)
    head = header(bat_at, blocks, block_size,
                  parent_uuid=parent.get("uuid", bytes(16)),
                  parent_timestamp=parent.get("timestamp", 0),
                  parent_name=parent.get("name", b""), locators=entries)
    data = bytearray(tail + head + _pad(struct.pack(">%dI" % blocks, *bat)))
    for chunk in chunks + block_bytes:
        data += chunk
    data += tail
    layout = {"footer_copy": 0, "header": FOOTER_SIZE, "bat": bat_at, "locators": located,
              "blocks": block_at, "footer": len(data) - FOOTER_SIZE}
    return Image(data, layout, disk_type)


def dynamic(size, block_size=DEFAULT_BLOCK, writes=(), uuid=None, **footer_fields):
    """A dynamic disk of @size bytes with @block_size blocks. Each block that
    @writes touches is allocated, its bitmap bits set for the sectors
    written; every other block is unallocated (zeros)."""
    return _sparse(DYNAMIC, size, block_size, writes, uuid, None, footer_fields)


def differencing(parent_uuid, size, parent_name="base.vhd",
                 locators=(("W2ru", ".\\base.vhd"),), writes=(), block_size=DEFAULT_BLOCK,
                 parent_timestamp=DEFAULT_TIMESTAMP, uuid=None, **footer_fields):
    """A differencing disk of @size bytes over the disk whose footer UUID is
    @parent_uuid (16 bytes, or an Image whose UUID is taken).

    @parent_name is the Parent Unicode Name (str, or raw bytes as stored).
    @locators is a list of (code, path): "W2ru", "W2ku", "MacX", ... with a
    str path encoded as the code wants, or raw bytes stored as they are.
    @writes sets the sectors this disk holds; all others are its parent's.
    """
    if isinstance(parent_uuid, Image):
        parent_uuid = parent_uuid.uuid
    parent = {"uuid": parent_uuid, "timestamp": parent_timestamp, "name": parent_name,
              "locators": locators}
    return _sparse(DIFFERENCING, size, block_size, writes, uuid, parent, footer_fields)
