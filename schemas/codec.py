"""Avro codec with Confluent wire framing: magic byte 0, 4-byte big-endian schema id, schemaless Avro body.

A message holds either one usage event or a batch of them; the schema id tells which. Decoding returns a list
of event dicts in both cases, so the worker has one shape to handle. Messages written with another version of
the schema (an older or newer UsageEvent known to the catalog or the registry) are read through Avro schema
resolution into this version's shape: added fields get their defaults, removed ones are skipped.
"""

from __future__ import annotations

import io
import struct
from operator import itemgetter
from typing import Any, Callable, Iterable

from fastavro import schemaless_reader, schemaless_writer

from schemas.catalog import BATCH_SUBJECT, USAGE_SUBJECT, Catalog, event_fields, parsed_usage_schemas
from schemas.errors import DecodeError, EncodeError, SchemaNotFound
from schemas.fast_decode import build_decoder, build_message_reader

__all__ = ["UsageCodec", "MAGIC_BYTE", "HEADER_SIZE"]

MAGIC_BYTE = 0
_HEADER = struct.Struct(">bI")
HEADER_SIZE = _HEADER.size
_MAX_UNKNOWN_IDS = 1024  # ids cached as unknown, so a flood of junk does not hammer the registry


class UsageCodec:
    """Encode / decode usage events. Ids come from the offline catalog or a registry-backed one
    (`schemas.registry.RegistryCatalog`); anything with `latest(subject, kind)` and `writer_schema(id)` fits.
    The latest versions are used unless event_id / batch_id name the ones this code writes.

    `encode` / `encode_batch` raise EncodeError on a dict that does not fit the schema.
    `decode` raises DecodeError with reason bad_magic, truncated, unknown_schema_id or corrupt_avro; a registry
    outage raises SchemaRegistryUnavailable instead (retry, do not dead-letter).
    """

    def __init__(self, catalog: Any | None = None, event_id: int | None = None, batch_id: int | None = None) -> None:
        self.catalog = catalog or Catalog.default()
        self._event_schema, self._batch_schema = parsed_usage_schemas()
        self.event_schema_id = event_id if event_id is not None else self.catalog.latest(USAGE_SUBJECT, "event").schema_id
        self.batch_schema_id = batch_id if batch_id is not None else self.catalog.latest(BATCH_SUBJECT, "batch").schema_id
        self._event_header = _HEADER.pack(MAGIC_BYTE, self.event_schema_id)
        self._batch_header = _HEADER.pack(MAGIC_BYTE, self.batch_schema_id)
        # schema id -> (writer schema, reader schema or None when identical, is_batch)
        self._readers: dict[int, tuple[dict, dict | None, bool]] = {
            self.event_schema_id: (self._event_schema, None, False),
            self.batch_schema_id: (self._batch_schema, None, True),
        }
        self._unknown: set[int] = set()
        # this version's own schema ids: a generated decoder first (schemas/fast_decode.py), fastavro when it gives up
        named = {self._event_schema["name"]: self._event_schema}
        self._fast = {sid: dec for sid, dec in (
            (self.event_schema_id, build_decoder(self._event_schema, False)),
            (self.batch_schema_id, build_decoder(self._batch_schema, True, named))) if dec is not None}
        # the same, each event as the tuple of its values in event_fields() order (the worker's `decode_values`)
        fields = event_fields()
        if tuple(f["name"] for f in self._event_schema["fields"]) != fields:
            raise ValueError("the parsed UsageEvent schema's fields are not usage_event.avsc's, in its order")
        self._values_of: Callable[[dict[str, Any]], tuple] = itemgetter(*fields)
        # whole messages of this version's ids, by their 5 header bytes: one C call per message (fast_decode)
        self._whole_values = {_HEADER.pack(MAGIC_BYTE, sid): read for sid, read in (
            (self.event_schema_id, build_message_reader(self._event_schema, False, _HEADER.size)),
            (self.batch_schema_id, build_message_reader(self._batch_schema, True, _HEADER.size, named)))
            if read is not None}
        # without the compiled reader: the generated Python decoders of the same tuples (with it, a message it gave
        # up on goes straight to fastavro: the Python decoder reads the same shapes and would give up too)
        self._fast_values = {} if self._whole_values else {sid: dec for sid, dec in (
            (self.event_schema_id, build_decoder(self._event_schema, False, values=True)),
            (self.batch_schema_id, build_decoder(self._batch_schema, True, named, values=True))) if dec is not None}

    def encode(self, event: dict[str, Any]) -> bytes:
        """One event, framed. Missing optional fields take their Avro defaults."""
        buf = io.BytesIO()
        buf.write(self._event_header)
        try:
            schemaless_writer(buf, self._event_schema, event)
        except (TypeError, ValueError, KeyError, AttributeError) as exc:
            raise EncodeError(f"event does not fit the schema: {exc}") from exc
        return buf.getvalue()

    def encode_batch(self, events: Iterable[dict[str, Any]]) -> bytes:
        """Many events in one framed UsageBatch record."""
        buf = io.BytesIO()
        buf.write(self._batch_header)
        try:
            schemaless_writer(buf, self._batch_schema, {"events": list(events)})
        except (TypeError, ValueError, KeyError, AttributeError) as exc:
            raise EncodeError(f"batch does not fit the schema: {exc}") from exc
        return buf.getvalue()

    def decode(self, data: bytes | None) -> list[dict[str, Any]]:
        """The events of one message, in this version's shape."""
        return self._decode(data, self._fast, None)

    def decode_values(self, data: bytes | None) -> list[tuple]:
        """The events of one message, each as the tuple of its field values in `schemas.catalog.event_fields()`
        order (every field present: Avro fills defaults): what `decode` gives, without building a dict per event.
        The same errors as `decode`."""
        if data:
            read = self._whole_values.get(data[:_HEADER.size])
            if read is not None:
                try:
                    return read(data)
                except Exception:  # noqa: BLE001 - anything unusual: the full path below decides
                    pass
        return self._decode(data, self._fast_values, self._values_of)

    def _decode(self, data: bytes | None, fast_decoders: dict[int, Any],
                convert: Callable[[dict[str, Any]], Any] | None) -> list[Any]:
        if not data or len(data) < _HEADER.size:
            raise DecodeError("truncated", f"{len(data or b'')} bytes is shorter than the 5-byte header")
        magic, schema_id = _HEADER.unpack_from(data)
        if magic != MAGIC_BYTE:
            raise DecodeError("bad_magic", f"magic byte {magic} != 0")
        fast = fast_decoders.get(schema_id)
        if fast is not None:
            try:
                events, end = fast(data, _HEADER.size)
            except Exception:  # noqa: BLE001 - anything unusual: fastavro below decides (same events or same error)
                pass
            else:
                if end == len(data):
                    return events
        reader = self._readers.get(schema_id) or self._resolve(schema_id)
        writer, target, is_batch = reader
        buf = io.BytesIO(data)
        buf.seek(_HEADER.size)
        try:
            record = schemaless_reader(buf, writer, target)
        except Exception as exc:  # fastavro raises EOFError, ValueError, UnicodeDecodeError, ... on bad bodies
            raise DecodeError("corrupt_avro", f"{type(exc).__name__}: {exc}") from exc
        if buf.tell() != len(data):
            raise DecodeError("corrupt_avro", f"{len(data) - buf.tell()} trailing bytes after the record")
        events = record["events"] if is_batch else [record]
        return events if convert is None else [convert(e) for e in events]

    def _resolve(self, schema_id: int) -> tuple[dict, dict | None, bool]:
        if schema_id in self._unknown:
            raise DecodeError("unknown_schema_id", f"schema id {schema_id}")
        try:
            writer, is_batch = self.catalog.writer_schema(schema_id)
        except SchemaNotFound as exc:
            if len(self._unknown) < _MAX_UNKNOWN_IDS:
                self._unknown.add(schema_id)
            raise DecodeError("unknown_schema_id", f"schema id {schema_id}: {exc}") from None
        reader = (writer, self._batch_schema if is_batch else self._event_schema, is_batch)
        self._readers[schema_id] = reader
        return reader
