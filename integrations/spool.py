"""A bounded on-disk spool of framed Kafka messages that could not reach the broker.

Layout: a directory of append-only segment files `seg-<n>.spool`; each record is
`u32 key_len (0xFFFFFFFF = no key) | key | u32 value_len | value | u32 crc32(key + value)`.
The publisher appends while the broker is unreachable, and on reconnect takes the oldest closed segment,
produces every record, and acks the segment once every delivery report is back (failures are re-appended
first). A crash between produce and ack replays the segment again: at-least-once here, exactly-once by
event_id downstream. A torn record at a segment's end (crash mid-write) and everything after it is skipped and
logged; nothing else is ever dropped except what does not fit under `max_bytes`, which `append` reports.
"""

from __future__ import annotations

import logging
import struct
import threading
import zlib
from dataclasses import dataclass
from pathlib import Path

__all__ = ["DiskSpool", "Segment"]

log = logging.getLogger(__name__)
_U32 = struct.Struct(">I")
_NO_KEY = 0xFFFFFFFF


@dataclass(frozen=True)
class Segment:
    """A closed segment handed out for replay: its file and its records as (key, value) pairs."""

    path: Path
    records: list[tuple[bytes | None, bytes]]


class DiskSpool:
    """Thread-safe. `append` never raises on a full spool: it returns False and the caller counts the drop."""

    def __init__(self, directory: Path | str, max_bytes: int = 256 * 1024 * 1024) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._active = None  # open file object of the segment being appended to
        self._active_path: Path | None = None
        self._leased: set[Path] = set()
        existing = self._segments()
        self._bytes = sum(p.stat().st_size for p in existing)
        self._next = (int(existing[-1].stem.split("-")[1]) + 1) if existing else 0

    def _segments(self) -> list[Path]:
        return sorted(self.directory.glob("seg-*.spool"))

    @property
    def pending_bytes(self) -> int:
        """Bytes on disk not yet acked (including segments out for replay)."""
        return self._bytes

    def has_pending(self) -> bool:
        with self._lock:
            return any(p not in self._leased for p in self._segments())

    def append(self, key: bytes | None, value: bytes) -> bool:
        """Persist one message; False (and nothing written) when it would exceed max_bytes."""
        k = key or b""
        rec = b"".join((
            _U32.pack(_NO_KEY if key is None else len(k)), k, _U32.pack(len(value)), value,
            _U32.pack(zlib.crc32(value, zlib.crc32(k))),
        ))
        with self._lock:
            if self._bytes + len(rec) > self.max_bytes:
                return False
            if self._active is None:
                self._active_path = self.directory / f"seg-{self._next:012d}.spool"
                self._next += 1
                self._active = open(self._active_path, "ab")
            self._active.write(rec)
            self._active.flush()
            self._bytes += len(rec)
            return True

    def take(self) -> Segment | None:
        """Close the active segment and lease the oldest unleased one for replay; None when nothing is pending."""
        with self._lock:
            self._close_active()
            free = [p for p in self._segments() if p not in self._leased]
            if not free:
                return None
            path = free[0]
            self._leased.add(path)
        return Segment(path, list(self._read(path)))

    def ack(self, segment: Segment) -> None:
        """Every record of `segment` was delivered (or re-appended): delete it."""
        with self._lock:
            self._bytes -= segment.path.stat().st_size if segment.path.exists() else 0
            segment.path.unlink(missing_ok=True)
            self._leased.discard(segment.path)

    def release(self, segment: Segment) -> None:
        """Give a leased segment back untouched (replay could not start)."""
        with self._lock:
            self._leased.discard(segment.path)

    def close(self) -> None:
        with self._lock:
            self._close_active()

    def _close_active(self) -> None:
        if self._active is not None:
            self._active.close()
            self._active = None

    @staticmethod
    def _read(path: Path):
        data = path.read_bytes()
        pos = 0
        while pos < len(data):
            try:
                (klen,) = _U32.unpack_from(data, pos)
                pos += 4
                key = None if klen == _NO_KEY else data[pos:pos + klen]
                pos += 0 if key is None else klen
                (vlen,) = _U32.unpack_from(data, pos)
                value = data[pos + 4:pos + 4 + vlen]
                pos += 4 + vlen
                (crc,) = _U32.unpack_from(data, pos)
                pos += 4
            except struct.error:
                crc, value, vlen = None, b"", -1
            if crc is None or len(value) != vlen or crc != zlib.crc32(value, zlib.crc32(key or b"")):
                log.error("spool segment %s: torn or corrupt record at byte %d; skipping the rest", path, pos)
                return
            yield key, value
