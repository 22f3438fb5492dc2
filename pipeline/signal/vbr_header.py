"""MP3 length claims: an MP3's length is whatever its first frame's Xing / Info (VBR)
header says, and libsndfile (through mpg123) stops decoding there, or keeps handing out
blocks up to it. A header that claims too few frames cuts the recording short; one that
claims too many makes a two-second file pass for hours. Decoders that are trusted with
damaged files (ffmpeg, mpg123's own player) decode to the end of the frames that are
really there; so do we.

``lift_frame_count(head)`` finds the frame-count field of that header, and
``LiftedCount`` serves a file with that field raised to the largest count libsndfile
keeps in range, so that the decoder stops at the real end of the audio and the length
is what was decoded (``pipeline.signal.audio`` reads until a short block). What is lost is the
header's gapless trim at the end: up to one frame (1152 samples) of the encoder's
padding, silence, stays on.

Where the fields are: ISO/IEC 11172-3 and 13818-3 (the frame header and the side
information's size per version and channel mode), and the Xing header as written by
LAME ("Xing" or "Info", a 32-bit big-endian flags word, then the frame count when flag
bit 0 is set).
"""

from __future__ import annotations

import io
import struct

# The count written in place of the claim: 1 << 20 frames is 6 h at 48 kHz, far past
# any recording the budget lets through, and frames x 1152 stays within 32 bits
LIFTED_FRAMES = 1 << 20
_HEAD_BYTES = 1 << 16  # the ID3v2 tag (cover art) must not hide the first frame


def _after_id3(head: bytes) -> int:
    """Offset just past an ID3v2 tag at the start of ``head`` (0 when there is none)."""
    if len(head) < 10 or head[:3] != b"ID3":
        return 0
    size = 0
    for byte in head[6:10]:  # a "syncsafe" integer: 7 bits a byte
        size = (size << 7) | (byte & 0x7F)
    footer = 10 if head[5] & 0x10 else 0
    return 10 + size + footer


def frame_count_offset(head: bytes) -> int | None:
    """Where the Xing / Info header of the first MPEG audio frame in ``head`` (the file's
    first bytes) keeps its frame count: a byte offset from the start of the file, or
    None when the first frame has no such header or no count."""
    start = _after_id3(head)
    if start + 4 > len(head) or head[start] != 0xFF or head[start + 1] & 0xE0 != 0xE0:
        return None
    version = (head[start + 1] >> 3) & 0x03  # 3: MPEG-1, 2: MPEG-2, 0: MPEG-2.5
    layer = (head[start + 1] >> 1) & 0x03  # 1: layer III
    mono = (head[start + 3] >> 6) & 0x03 == 3
    if layer != 1 or version == 1:
        return None
    side_info = (17 if mono else 32) if version == 3 else (9 if mono else 17)
    tag = start + 4 + side_info
    if head[tag:tag + 4] not in (b"Xing", b"Info") or tag + 12 > len(head):
        return None
    (flags,) = struct.unpack(">I", head[tag + 4:tag + 8])
    return tag + 8 if flags & 1 else None


class LiftedCount(io.RawIOBase):
    """A seekable binary file object over ``raw`` (an open binary file) that reads like
    it except for the four bytes at ``offset``, which read as ``LIFTED_FRAMES``
    (big-endian): the file as ``soundfile`` should see it (module docstring)."""

    def __init__(self, raw, offset: int):
        super().__init__()
        self.raw, self.offset = raw, offset
        self.patch = struct.pack(">I", LIFTED_FRAMES)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self.raw.seek(offset, whence)

    def tell(self) -> int:
        return self.raw.tell()

    def readinto(self, buffer) -> int:
        position = self.raw.tell()
        count = self.raw.readinto(buffer)
        if not count:
            return count or 0
        view = memoryview(buffer)
        for i, byte in enumerate(self.patch):
            at = self.offset + i - position
            if 0 <= at < count:
                view[at] = byte
        return count

    def close(self) -> None:
        self.raw.close()
        super().close()


def open_lifted(raw):
    """``raw`` (an open, seekable binary file) as ``LiftedCount`` when it is an MP3
    whose VBR header states a frame count, else ``raw`` itself, rewound."""
    raw.seek(0)
    head = raw.read(_HEAD_BYTES)
    raw.seek(0)
    offset = frame_count_offset(head) if head else None
    if offset is None:
        offset = _beyond_head(raw, head)
    return raw if offset is None else LiftedCount(raw, offset)


def _beyond_head(raw, head: bytes) -> int | None:
    """``frame_count_offset`` when an ID3v2 tag (cover art) is longer than ``head``."""
    start = _after_id3(head)
    if start <= len(head):
        return None
    raw.seek(start)
    offset = frame_count_offset(raw.read(64))
    raw.seek(0)
    return None if offset is None else start + offset
