"""A zip writer for streamed exports: bytes out as they are made, with bounded memory.

:class:`zipfile.ZipFile` keeps one :class:`zipfile.ZipInfo` per entry until it writes the central
directory, so a zip of 20,000 frames (80,000 entries for DAVIS) grows the writer by tens of MB.
:class:`ZipStream` writes each entry's central-directory record to a temporary file instead and
copies it out at the end, so memory does not grow with the number of entries. Entries whose bytes
are in hand are stored with their sizes and CRC in the local header; streamed entries (JSON written
while read) use a zip64 data descriptor and may be deflated. Zip64 records are added only when
offsets, sizes or the entry count need them, so small archives are plain zips.
"""

from __future__ import annotations

import struct
import tempfile
import time
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path

_LOCAL = struct.Struct("<4s5H3I2H")
_CENTRAL = struct.Struct("<4s4H2H3I5H2I")
_DESCRIPTOR64 = struct.Struct("<4sIQQ")
_EOCD = struct.Struct("<4s4H2IH")
_EOCD64 = struct.Struct("<4sQ2H2I2Q2Q")
_LOCATOR64 = struct.Struct("<4sIQI")
_MAX32 = 0xFFFFFFFF
_MAX16 = 0xFFFF
_UTF8 = 0x800
_DESCRIPTOR = 0x08
_STORED, _DEFLATED = 0, 8
_COPY = 1 << 20


def _dos_time() -> tuple[int, int]:
    t = time.localtime()
    return (t.tm_hour << 11) | (t.tm_min << 5) | (t.tm_sec // 2), ((t.tm_year - 1980) << 9) | (t.tm_mon << 5) | t.tm_mday


class ZipStream:
    """Writes a zip archive piece by piece; every method returns the bytes to send next.

    Example:
        >>> out = ZipStream()
        >>> data = out.add("a.txt", b"hi") + b"".join(out.stream("b.json", [b"{", b"}"])) + b"".join(out.finish())
    """

    def __init__(self) -> None:
        self._offset = 0
        self._count = 0
        self._central = tempfile.TemporaryFile()  # noqa: SIM115 (lives until finish())
        self._central_size = 0
        self._time, self._date = _dos_time()

    def _record(self, name: bytes, method: int, flags: int, crc: int, csize: int, usize: int, offset: int) -> None:
        extra = b""
        fields = [v for v in (usize, csize) if v >= _MAX32] + ([offset] if offset >= _MAX32 else [])
        if fields:
            extra = struct.pack("<2H", 1, 8 * len(fields)) + b"".join(struct.pack("<Q", v) for v in fields)
        record = _CENTRAL.pack(
            b"PK\x01\x02", 45 if extra else 20, 45 if extra else 20, flags, method, self._time, self._date, crc,
            min(csize, _MAX32), min(usize, _MAX32), len(name), len(extra), 0, 0, 0, 0, min(offset, _MAX32),
        )
        self._central.write(record + name + extra)
        self._central_size += len(record) + len(name) + len(extra)
        self._count += 1

    def add(self, name: str, data: bytes) -> bytes:
        """An entry whose bytes are in hand, stored as they are (images, PNGs)."""
        raw = name.encode("utf-8")
        crc = zlib.crc32(data)
        size = len(data)
        extra = struct.pack("<2H2Q", 1, 16, size, size) if size >= _MAX32 else b""
        header = _LOCAL.pack(
            b"PK\x03\x04", 45 if extra else 20, _UTF8, _STORED, self._time, self._date, crc,
            min(size, _MAX32), min(size, _MAX32), len(raw), len(extra),
        )
        self._record(raw, _STORED, _UTF8, crc, size, size, self._offset)
        out = header + raw + extra + data
        self._offset += len(out)
        return out

    def add_file(self, name: str, path: str | Path) -> bytes:
        """An entry holding a file's bytes (a frame's JPEG)."""
        return self.add(name, Path(path).read_bytes())

    def stream(self, name: str, chunks: Iterable[bytes], *, deflate: bool = True) -> Iterator[bytes]:
        """An entry written while its bytes are made (an export's JSON), deflated unless asked not to.

        Yields:
            The local header, the (compressed) data piece by piece, then a zip64 data descriptor.
        """
        raw = name.encode("utf-8")
        method = _DEFLATED if deflate else _STORED
        flags = _UTF8 | _DESCRIPTOR
        offset = self._offset
        header = _LOCAL.pack(b"PK\x03\x04", 45, flags, method, self._time, self._date, 0, _MAX32, _MAX32,
                             len(raw), 20) + raw + struct.pack("<2H2Q", 1, 16, 0, 0)
        self._offset += len(header)
        yield header
        crc, usize, csize = 0, 0, 0
        packer = zlib.compressobj(6, zlib.DEFLATED, -15) if deflate else None
        for chunk in chunks:
            crc = zlib.crc32(chunk, crc)
            usize += len(chunk)
            out = packer.compress(chunk) if packer is not None else chunk
            if out:
                csize += len(out)
                yield out
        if packer is not None:
            tail = packer.flush()
            csize += len(tail)
            yield tail
        descriptor = _DESCRIPTOR64.pack(b"PK\x07\x08", crc, csize, usize)
        self._offset += csize + len(descriptor)
        self._record(raw, method, flags, crc, csize, usize, offset)
        yield descriptor

    def finish(self) -> Iterator[bytes]:
        """The central directory and end records; the archive is complete after these bytes."""
        start = self._offset
        self._central.seek(0)
        while True:
            block = self._central.read(_COPY)
            if not block:
                break
            yield block
        self._central.close()
        end = start + self._central_size
        if self._count >= _MAX16 or start >= _MAX32 or self._central_size >= _MAX32:
            yield _EOCD64.pack(b"PK\x06\x06", 44, 45, 45, 0, 0, self._count, self._count,
                               self._central_size, start)
            yield _LOCATOR64.pack(b"PK\x06\x07", 0, end, 1)
        yield _EOCD.pack(b"PK\x05\x06", 0, 0, min(self._count, _MAX16), min(self._count, _MAX16),
                         min(self._central_size, _MAX32), min(start, _MAX32), 0)


class Spool:
    """Text written to a temporary file while an archive is being written, read back as one entry later
    (an index of every frame, say, without holding it in memory)."""

    def __init__(self) -> None:
        self._file = tempfile.TemporaryFile()  # noqa: SIM115 (closed by chunks())

    def write(self, text: str) -> None:
        """Append ``text`` (UTF-8)."""
        self._file.write(text.encode("utf-8"))

    def chunks(self) -> Iterator[bytes]:
        """Everything written, in blocks; the spool is closed afterwards."""
        self._file.seek(0)
        try:
            while block := self._file.read(_COPY):
                yield block
        finally:
            self._file.close()
