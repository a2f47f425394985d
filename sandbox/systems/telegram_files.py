"""Uploaded files of the Telegram sandbox: image headers, photo checks, file ids.

A photo must decode as Telegram would need it to: a PNG is read chunk by chunk (CRCs, IHDR,
IDAT that inflates to exactly the rows IHDR promises, IEND), a JPEG up to its SOF header
(width and height). Nothing is kept but metadata: file ids map to {kind, sha256, size, ...}.
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass

MAX_PHOTO_BYTES = 10 * 1024 * 1024  # uploads; "10 MB max size for photos"
MAX_DOCUMENT_BYTES = 50 * 1024 * 1024  # "50 MB for other files"
MAX_PHOTO_SIDES = 10_000  # width + height
MAX_PHOTO_RATIO = 20.0  # the longer side over the shorter
THUMBNAIL_SIDES = (90, 320, 800, 1280)  # Telegram's s, m, x, y sizes (longest side)
LARGEST_SIDE = 2560  # the w size: the biggest a photo is stored at
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # colour type -> samples per pixel
_PNG_DEPTHS = {0: (1, 2, 4, 8, 16), 2: (8, 16), 3: (1, 2, 4, 8), 4: (8, 16), 6: (8, 16)}
_JPEG_SOF = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD,
                       0xCE, 0xCF})
_ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2),
          (0, 1, 1, 2))  # (x0, y0, dx, dy) of the seven interlace passes


class ImageError(ValueError):
    """The bytes are not an image Telegram could process."""


@dataclass(frozen=True)
class Image:
    format: str  # "png" | "jpeg"
    width: int
    height: int


def read_image(data: bytes, on_header: Callable[[Image], None] | None = None) -> Image:
    """The image's format and size; ImageError if it is not a decodable PNG or JPEG.

    `on_header` sees the size as soon as the header is read, before the pixel data is
    decoded (so an image of forbidden dimensions is refused without inflating it)."""
    if data.startswith(_PNG_SIGNATURE):
        return _png(data, on_header)
    if data.startswith(b"\xff\xd8"):
        image = _jpeg(data)
        if on_header is not None:
            on_header(image)
        return image
    raise ImageError("neither a PNG nor a JPEG")


def dimensions_ok(width: int, height: int) -> bool:
    """Telegram's photo rule: width + height <= 10000 and a side ratio of at most 20."""
    return (width + height <= MAX_PHOTO_SIDES
            and max(width, height) <= MAX_PHOTO_RATIO * min(width, height))


def photo_sizes(width: int, height: int) -> list[tuple[str, int, int]]:
    """(size letter, width, height) of the PhotoSizes Telegram keeps, smallest first."""
    longest = max(width, height)
    sizes = []
    for letter, side in zip("smxy", THUMBNAIL_SIDES, strict=True):
        if side < longest:
            sizes.append((letter, *_scaled(width, height, side)))
    sizes.append(("w", *_scaled(width, height, min(longest, LARGEST_SIDE))))
    return sizes


def _scaled(width: int, height: int, side: int) -> tuple[int, int]:
    longest = max(width, height)
    return (max(1, round(width * side / longest)), max(1, round(height * side / longest)))


def file_ids(bot_id: int, kind: str, sha256: str, tag: str) -> tuple[str, str]:
    """(file_id, file_unique_id): the id is per bot, the unique id the same for everyone."""
    unique = hashlib.sha256(f"{kind}:{sha256}:{tag}".encode()).hexdigest()
    prefix = {"photo": "AgACAgI", "document": "BQACAgI"}[kind]
    return f"{prefix}{hashlib.sha256(f'{bot_id}:{unique}'.encode()).hexdigest()[:40]}", \
        f"AQAD{unique[:16]}"


def _png(data: bytes, on_header: Callable[[Image], None] | None) -> Image:
    pos, header, idat, ended = len(_PNG_SIGNATURE), None, [], False
    while pos < len(data) and not ended:
        if pos + 12 > len(data):
            raise ImageError("truncated PNG chunk")
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        crc = data[pos + 8 + length:pos + 12 + length]
        if len(body) != length or len(crc) != 4:
            raise ImageError("truncated PNG chunk")
        if zlib.crc32(kind + body) != struct.unpack(">I", crc)[0]:
            raise ImageError(f"bad CRC in PNG chunk {kind!r}")
        if header is None and kind != b"IHDR":
            raise ImageError("PNG does not start with IHDR")
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            idat.append(body)
        ended = kind == b"IEND"
        pos += 12 + length
    if header is None or len(header) != 13 or not idat or not ended:
        raise ImageError("PNG lacks IHDR, IDAT or IEND")
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", header)
    if not width or not height or depth not in _PNG_DEPTHS.get(colour, ()) or interlace > 1:
        raise ImageError("PNG header is invalid")
    image = Image("png", width, height)
    if on_header is not None:
        on_header(image)
    _inflate_exactly(b"".join(idat), _png_raw_size(width, height, depth, colour, interlace))
    return image


def _png_raw_size(width: int, height: int, depth: int, colour: int, interlace: int) -> int:
    """Bytes the IDAT stream inflates to: each row's filter byte plus its packed samples."""
    bits = depth * _PNG_CHANNELS[colour]

    def rows(w: int, h: int) -> int:
        return 0 if not w or not h else h * (1 + (w * bits + 7) // 8)

    if not interlace:
        return rows(width, height)
    return sum(rows(max(0, (width - x0 + dx - 1) // dx), max(0, (height - y0 + dy - 1) // dy))
               for x0, y0, dx, dy in _ADAM7)


def _inflate_exactly(stream: bytes, expected: int) -> None:
    """Inflate in bounded steps (no decompression bomb) and demand exactly `expected` bytes."""
    inflater = zlib.decompressobj()
    produced, pending = 0, stream
    try:
        while pending or not inflater.eof:
            chunk = inflater.decompress(pending, 1 << 20)
            produced += len(chunk)
            if produced > expected:
                raise ImageError("PNG image data is longer than its header says")
            pending = inflater.unconsumed_tail
            if not chunk and not pending:
                break
    except zlib.error as exc:
        raise ImageError(f"PNG image data does not inflate: {exc}") from None
    if produced != expected or not inflater.eof:
        raise ImageError("PNG image data is shorter than its header says")


def _jpeg(data: bytes) -> Image:
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            raise ImageError("JPEG marker expected")
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD8)):  # markers without a length
            pos += 2
            continue
        if marker in (0xD9, 0xDA):  # EOI or start of scan before any frame header
            break
        (length,) = struct.unpack(">H", data[pos + 2:pos + 4])
        if length < 2 or pos + 2 + length > len(data):
            raise ImageError("truncated JPEG segment")
        if marker in _JPEG_SOF:
            if length < 8:
                raise ImageError("JPEG frame header is too short")
            height, width = struct.unpack(">HH", data[pos + 5:pos + 9])
            if not width or not height:
                raise ImageError("JPEG frame has no size")
            return Image("jpeg", width, height)
        pos += 2 + length
    raise ImageError("JPEG has no frame header")
