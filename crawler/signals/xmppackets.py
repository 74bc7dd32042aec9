"""Finding XMP packets in image containers, size-bounded (used by :mod:`crawler.signals.xmp`).

JPEG: APP1 segments (``http://ns.adobe.com/xap/1.0/\\0``) and Extended XMP reassembled from its
chunks; PNG: ``iTXt`` chunks with keyword ``XML:com.adobe.xmp``, inflated with a bound (no zip
bomb); WebP: the ``XMP `` RIFF chunk. Anything else (TIFF, GIF, HEIF, sidecar ``.xmp`` files, or a
JPEG/PNG/WebP whose structure is broken) is scanned for ``<?xpacket begin`` / ``<x:xmpmeta`` in
UTF-8 or UTF-16. A packet over :data:`MAX_PACKET_BYTES` is refused unread.
"""

from __future__ import annotations

import zlib

MAX_PACKET_BYTES = 1024 * 1024
MAX_PACKETS = 8

_JPEG_XMP = b"http://ns.adobe.com/xap/1.0/\x00"
_JPEG_EXTENDED_XMP = b"http://ns.adobe.com/xmp/extension/\x00"
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_XMP_KEYWORD = b"XML:com.adobe.xmp"

# Packet start markers, in the three encodings XMP uses in practice.
_ENCODINGS = ("utf-8", "utf-16-be", "utf-16-le")
_STARTS = tuple(
    (marker.encode(enc), enc) for enc in _ENCODINGS for marker in ("<?xpacket begin", "<x:xmpmeta")
)


class XmpError(ValueError):
    """Embedded XMP that cannot be read: too large, truncated, not well-formed, DTDs/entities."""


def _check_size(size: int, where: str) -> None:
    if size > MAX_PACKET_BYTES:
        raise XmpError(
            f"{where} XMP packet of {size} bytes is over the {MAX_PACKET_BYTES}-byte limit"
        )


def _jpeg_packets(data: bytes) -> list[tuple[str, bytes]] | None:
    """XMP packets of a JPEG's APP1 segments; None if the segment structure is broken."""
    packets: list[tuple[str, bytes]] = []
    extended: dict[bytes, tuple[int, dict[int, bytes]]] = {}
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0x01, 0xD8) or 0xD0 <= marker <= 0xD7:
            pos += 2
            continue
        if marker in (0xDA, 0xD9):  # start of scan / end of image: no more metadata
            break
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        if length < 2 or pos + 2 + length > len(data):
            return None
        segment = data[pos + 4 : pos + 2 + length]
        if marker == 0xE1 and segment.startswith(_JPEG_XMP):
            packets.append(("jpeg-app1", segment[len(_JPEG_XMP) :]))
        elif marker == 0xE1 and segment.startswith(_JPEG_EXTENDED_XMP):
            body = segment[len(_JPEG_EXTENDED_XMP) :]
            if len(body) < 40:
                raise XmpError("truncated Extended XMP segment")
            guid, total = body[:32], int.from_bytes(body[32:36], "big")
            offset = int.from_bytes(body[36:40], "big")
            _check_size(total, "Extended")
            extended.setdefault(guid, (total, {}))[1][offset] = body[40:]
        pos += 2 + length
    else:
        if pos < len(data):
            return None
    for guid, (total, chunks) in extended.items():
        joined = bytearray(total)
        covered = 0
        for offset, chunk in sorted(chunks.items()):
            if offset + len(chunk) > total:
                raise XmpError("Extended XMP chunk lies outside its declared length")
            joined[offset : offset + len(chunk)] = chunk
            covered += len(chunk)
        if covered < total:
            raise XmpError(f"incomplete Extended XMP {guid.decode('ascii', 'replace')}")
        packets.append(("jpeg-extended-xmp", bytes(joined)))
    return packets


def _png_packets(data: bytes) -> list[tuple[str, bytes]] | None:
    packets: list[tuple[str, bytes]] = []
    pos = len(_PNG_SIGNATURE)
    while pos + 8 <= len(data):
        length = int.from_bytes(data[pos : pos + 4], "big")
        kind = data[pos + 4 : pos + 8]
        body_end = pos + 8 + length
        if body_end + 4 > len(data):
            return None
        if kind == b"iTXt" and data[pos + 8 : body_end].startswith(_PNG_XMP_KEYWORD + b"\x00"):
            body = data[pos + 8 + len(_PNG_XMP_KEYWORD) + 1 : body_end]
            if len(body) < 2:
                raise XmpError("truncated PNG iTXt XMP chunk")
            compressed = body[0] == 1
            rest = body[2:]
            _, _, rest = rest.partition(b"\x00")  # language tag
            _, _, text = rest.partition(b"\x00")  # translated keyword
            if compressed:
                inflater = zlib.decompressobj()
                try:
                    text = inflater.decompress(text, MAX_PACKET_BYTES + 1)
                except zlib.error as exc:
                    raise XmpError(f"compressed PNG XMP does not inflate: {exc}") from None
                if len(text) > MAX_PACKET_BYTES or inflater.unconsumed_tail:
                    raise XmpError(f"PNG XMP inflates past the {MAX_PACKET_BYTES}-byte limit")
            packets.append(("png-itxt", text))
        if kind == b"IEND":
            break
        pos = body_end + 4
    return packets


def _webp_packets(data: bytes) -> list[tuple[str, bytes]] | None:
    packets: list[tuple[str, bytes]] = []
    pos = 12
    while pos + 8 <= len(data):
        kind = data[pos : pos + 4]
        size = int.from_bytes(data[pos + 4 : pos + 8], "little")
        if pos + 8 + size > len(data):
            return None
        if kind == b"XMP ":
            packets.append(("webp", data[pos + 8 : pos + 8 + size]))
        pos += 8 + size + (size & 1)
    return packets


def _packet_end(data: bytes, start: int, encoding: str) -> int:
    """Index just past the packet starting at ``start``: its ``<?xpacket end ...?>`` trailer,
    else its ``</x:xmpmeta>`` (the ``x:xmpmeta`` wrapper and the trailer are both optional)."""
    close_meta = "</x:xmpmeta>".encode(encoding)
    trailer = "<?xpacket end".encode(encoding)
    pi_close = "?>".encode(encoding)
    meta_at = data.find(close_meta, start)
    trailer_at = data.find(trailer, start if meta_at < 0 else meta_at)
    if trailer_at >= 0:
        close_at = data.find(pi_close, trailer_at)
        if close_at >= 0:
            return close_at + len(pi_close)
    if meta_at >= 0:
        return meta_at + len(close_meta)
    raise XmpError("XMP packet start without an end (truncated?)")


def _scan_packets(data: bytes) -> list[tuple[str, bytes]]:
    """Packets found by their markers, for containers we do not walk."""
    packets: list[tuple[str, bytes]] = []
    pos = 0
    while len(packets) < MAX_PACKETS:
        hits = [(data.find(marker, pos), enc) for marker, enc in _STARTS]
        found = [(at, enc) for at, enc in hits if at >= 0]
        if not found:
            break
        start, encoding = min(found)
        end = _packet_end(data, start, encoding)
        _check_size(end - start, "embedded")
        packets.append(("scan", data[start:end]))
        pos = end
    return packets


def find_packets(data: bytes) -> list[tuple[str, bytes]]:
    """Every XMP packet in ``data`` as ``(where, packet bytes)``; raises :class:`XmpError`."""
    walked: list[tuple[str, bytes]] | None = None
    if data.startswith(b"\xff\xd8"):
        walked = _jpeg_packets(data)
    elif data.startswith(_PNG_SIGNATURE):
        walked = _png_packets(data)
    elif data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        walked = _webp_packets(data)
    packets = walked if walked is not None else _scan_packets(data)
    for where, packet in packets:
        _check_size(len(packet), where)
    return packets[:MAX_PACKETS]
