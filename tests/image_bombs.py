"""Compressed images whose header declares far more pixels than their size suggests (decompression bombs)."""
from __future__ import annotations

import struct
import zlib


def _chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def png_bomb(width: int = 16000, height: int = 16000) -> bytes:
    """A valid 8-bit greyscale PNG of ``width`` x ``height`` black pixels: 16000x16000 is ~250 KB, 256 MB decoded."""
    compressor = zlib.compressobj(9)
    row = bytes(width + 1)  # filter byte 0 + a black row
    parts = [compressor.compress(row) for _ in range(height)]
    parts.append(compressor.flush())
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", b"".join(parts)) + _chunk(b"IEND", b"")
