"""The intake journal: guaranteed events made durable before their QUEUED ack.

Theory of operation
-------------------
A container waits for ``QUEUED`` before it forgets an event. Without a
journal, that ack waits for the delivery engine's turn and the store's
group commit (the event row, its index entries, its delivery row: a dozen
WAL pages and their sync). With it, the ROUTER reader appends the received
frames of a drained batch to this file with **one** ``write`` (and, with
``durability = "fsync"``, one ``fdatasync``) and acks them at once; the
engine and the store take the same events right after, as before.

* **Format.** A directory of segments ``intake-NNNNNNNN.journal``, appended
  in order. An entry is ``length (u32 LE) | crc32 (u32 LE) | frame``, the
  frame exactly as received. Reading stops at the first entry that is cut
  short or fails its CRC (a write the process did not finish): what follows
  was never acked.
* **Release.** Each entry is released once the store holds its event (its
  commit returned) or the engine took it without storing it. A segment no
  longer written to is deleted when all its entries are released; the
  segment being written is truncated once every entry in it is released and
  it has grown past ``truncate_bytes``. Neither needs a sync: a segment
  that comes back after a crash only holds events the store has, and
  replaying them is answered by the dedup.
* **Replay.** On open, the segments already there are read in order and
  their frames handed to the driver, which feeds them to the engine like
  frames without a sender before the ROUTER is read (the store's key and
  the engine's dedup window drop what was already stored); then they are
  deleted. Writing goes to a new segment.
* **Durability.** ``sync=True`` (``durability = "fsync"``): each append is
  synced before it returns, and a new segment's directory entry too; an ack
  survives power loss. ``sync=False``: the append reaches the OS page
  cache; an ack survives the process being killed.
"""

from __future__ import annotations

import logging
import os
import re
import struct
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path

__all__ = ["IntakeJournal", "read_segment"]

log = logging.getLogger("tradewire.delivery")

_HEADER = struct.Struct("<II")
_NAME = re.compile(r"^intake-(\d{8})\.journal$")
SEGMENT_BYTES = 16 << 20
"""A segment takes no new entries past this size: a new one starts."""
TRUNCATE_BYTES = 4 << 20
"""The segment being written is emptied once it is this big and fully released."""


def read_segment(path: Path) -> tuple[list[bytes], int]:
    """The intact entries of one segment, in order, and how many bytes after them were not."""
    data = path.read_bytes()
    frames: list[bytes] = []
    at, size = 0, len(data)
    while at + _HEADER.size <= size:
        length, crc = _HEADER.unpack_from(data, at)
        end = at + _HEADER.size + length
        if end > size:
            break
        frame = data[at + _HEADER.size : end]
        if zlib.crc32(frame) != crc:
            break
        frames.append(frame)
        at = end
    return frames, size - at


def encode_entries(frames: Sequence[bytes]) -> bytes:
    """``frames`` as journal entries, ready for one write."""
    parts: list[bytes] = []
    pack, crc32 = _HEADER.pack, zlib.crc32
    for frame in frames:
        parts.append(pack(len(frame), crc32(frame)))
        parts.append(frame)
    return b"".join(parts)


class IntakeJournal:
    """Append received frames durably; release them once the store holds them."""

    def __init__(
        self,
        directory: Path,
        *,
        sync: bool,
        segment_bytes: int = SEGMENT_BYTES,
        truncate_bytes: int = TRUNCATE_BYTES,
    ) -> None:
        self.directory = directory
        self.sync = sync
        self.segment_bytes = segment_bytes
        self.truncate_bytes = truncate_bytes
        directory.mkdir(parents=True, exist_ok=True)
        self._replay = sorted(self._segments())  # (number, path), oldest first
        last = self._replay[-1][0] if self._replay else 0
        self._number = last
        self._fd = -1
        self._size = 0
        self._unreleased: dict[int, int] = {}  # segment number -> entries not released
        self._open_next()

    def _segments(self) -> Iterator[tuple[int, Path]]:
        for path in self.directory.iterdir():
            match = _NAME.match(path.name)
            if match is not None:
                yield int(match.group(1)), path

    def _path(self, number: int) -> Path:
        return self.directory / f"intake-{number:08d}.journal"

    def _open_next(self) -> None:
        self._number += 1
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC
        self._fd = os.open(self._path(self._number), flags, 0o600)
        self._size = 0
        self._unreleased[self._number] = 0
        if self.sync:  # the new name must survive a power loss with the entries in it
            dir_fd = os.open(self.directory, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)

    # -- replay ----------------------------------------------------------------

    def replay(self) -> Iterator[list[bytes]]:
        """The frames of the segments found on open, one segment at a time, oldest first."""
        for _number, path in self._replay:
            frames, torn = read_segment(path)
            if torn:
                log.warning(
                    "intake journal: dropped a cut-off entry (never acked)",
                    extra={"segment": path.name, "bytes": torn},
                )
            yield frames

    def drop_replayed(self) -> None:
        """The replayed frames are in the store: delete their segments."""
        for _number, path in self._replay:
            path.unlink(missing_ok=True)
        self._replay = []

    # -- the hot path ------------------------------------------------------------

    def append(self, frames: Sequence[bytes]) -> int:
        """Write ``frames`` with one write (and one sync); the segment that holds them."""
        data = encode_entries(frames)
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view) :]
        if self.sync:
            os.fdatasync(self._fd)
        number = self._number
        self._unreleased[number] += len(frames)
        self._size += len(data)
        if self._size >= self.segment_bytes:
            os.close(self._fd)
            self._open_next()
        return number

    def release(self, number: int, count: int = 1) -> None:
        """``count`` entries of segment ``number`` are in the store (or need not be)."""
        left = self._unreleased.get(number)
        if left is None:
            return
        left -= count
        self._unreleased[number] = left
        if left > 0:
            return
        if number != self._number:
            del self._unreleased[number]
            self._path(number).unlink(missing_ok=True)
        elif self._size >= self.truncate_bytes:
            os.ftruncate(self._fd, 0)
            self._size = 0

    def unreleased(self) -> int:
        """Entries appended and not released yet (all segments)."""
        return sum(self._unreleased.values())

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
