"""The offline schema catalog: subject -> version -> id -> .avsc file, shipped in this package.

Dev and CI have no Schema Registry; this catalog plays its part with fixed ids. In production the codec asks a
Confluent Schema Registry instead (see `schemas.registry`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import fastavro

from schemas.errors import SchemaNotFound

__all__ = [
    "SchemaEntry", "Catalog", "USAGE_SUBJECT", "BATCH_SUBJECT", "SCHEMA_DIR", "load_avsc", "parsed_usage_schemas",
    "parse_writer_schema", "event_fields",
]

SCHEMA_DIR = Path(__file__).parent
USAGE_SUBJECT = "spend.usage.v1-value"
# The batch is a different record, not a version of the event: its own subject (RecordNameStrategy), so a
# registry's compatibility check on the event subject never compares a batch with an event.
BATCH_SUBJECT = "io.spendstream.usage.v1.UsageBatch"
EVENT_FULLNAME = "io.spendstream.usage.v1.UsageEvent"
BATCH_FULLNAME = "io.spendstream.usage.v1.UsageBatch"


@dataclass(frozen=True)
class SchemaEntry:
    subject: str
    version: int
    schema_id: int
    file: str
    kind: str  # "event" or "batch"


def load_avsc(name: str) -> dict[str, Any]:
    """Read one .avsc file of this package as JSON."""
    return json.loads((SCHEMA_DIR / name).read_text())


def _plain_times(schema: dict[str, Any]) -> dict[str, Any]:
    """The same schema with timestamp logical types dropped: identical bytes on the wire, but fastavro hands us
    the raw epoch-ms int instead of building a datetime per event (the hot path wants the int)."""
    fields = []
    for f in schema["fields"]:
        t = f["type"]
        if isinstance(t, dict) and t.get("logicalType", "").startswith("timestamp"):
            f = {**f, "type": t["type"]}
        fields.append(f)
    return {**schema, "fields": fields}


@cache
def parsed_usage_schemas() -> tuple[dict, dict]:
    """(event schema, batch schema), parsed by fastavro; the batch refers to the event by name.

    event_time is read and written as a plain long (UTC epoch ms); see `_plain_times`."""
    named: dict[str, Any] = {}
    event = fastavro.parse_schema(_plain_times(load_avsc("usage_event.avsc")), named_schemas=named)
    batch = fastavro.parse_schema(load_avsc("usage_batch.avsc"), named_schemas=named)
    return event, batch


def event_fields() -> tuple[str, ...]:
    """The UsageEvent's field names in schema order: every decoded event carries each of them (Avro fills
    defaults, schema resolution included)."""
    return tuple(f["name"] for f in load_avsc("usage_event.avsc")["fields"])


def parse_writer_schema(schema: dict[str, Any], references: list[dict[str, Any]] = ()) -> tuple[dict, bool]:
    """Parse a writer schema met on the wire (from the catalog or a registry): (parsed schema, is_batch).

    `references` are the raw schemas it names (the event, for a batch). Timestamps are read as plain longs, as
    in `parsed_usage_schemas`. Raises SchemaNotFound when the record is neither a UsageEvent nor a UsageBatch.
    """
    named: dict[str, Any] = {}
    for ref in references:
        fastavro.parse_schema(_plain_times(ref), named_schemas=named)
    fullname = f"{schema.get('namespace', '')}.{schema.get('name', '')}".lstrip(".")
    if fullname not in (EVENT_FULLNAME, BATCH_FULLNAME):
        raise SchemaNotFound(f"{fullname or 'an unnamed schema'} is not a usage event or batch record")
    parsed = fastavro.parse_schema(_plain_times(schema), named_schemas=named)
    return parsed, fullname == BATCH_FULLNAME


class Catalog:
    """Subjects and their versions, read from catalog.json (schema files live next to it)."""

    def __init__(self, entries: list[SchemaEntry], base_dir: Path = SCHEMA_DIR) -> None:
        self._by_id = {e.schema_id: e for e in entries}
        self._entries = entries
        self.base_dir = base_dir

    @classmethod
    def default(cls) -> "Catalog":
        return cls.from_file(SCHEMA_DIR / "catalog.json")

    @classmethod
    def from_file(cls, path: Path) -> "Catalog":
        """Read a catalog.json; raises SchemaNotFound when the file is missing or malformed."""
        try:
            raw = json.loads(Path(path).read_text())
            entries = [
                SchemaEntry(subject, v["version"], v["id"], v["file"], v.get("kind", "event"))
                for subject, versions in raw["subjects"].items()
                for v in versions
            ]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise SchemaNotFound(f"cannot read schema catalog {path}: {exc}") from exc
        return cls(entries, Path(path).parent)

    def schema_json(self, entry: SchemaEntry) -> dict[str, Any]:
        """The raw .avsc of one entry."""
        return json.loads((self.base_dir / entry.file).read_text())

    def writer_schema(self, schema_id: int) -> tuple[dict, bool]:
        """The parsed writer schema for an id and whether it is a batch; raises SchemaNotFound."""
        entry = self.by_id(schema_id)
        refs = [] if entry.kind == "event" else [self.schema_json(self.latest(USAGE_SUBJECT, "event"))]
        return parse_writer_schema(self.schema_json(entry), refs)

    def by_id(self, schema_id: int) -> SchemaEntry:
        """Raises SchemaNotFound for an id the catalog does not hold."""
        try:
            return self._by_id[schema_id]
        except KeyError:
            raise SchemaNotFound(f"schema id {schema_id} is not in the catalog") from None

    def latest(self, subject: str, kind: str) -> SchemaEntry:
        """The highest version of `kind` under `subject`; raises SchemaNotFound.

        For kind "batch" a miss under `subject` falls back to any batch entry: the batch moved from the event's
        subject to BATCH_SUBJECT, and callers written against the old layout keep working."""
        found = [e for e in self._entries if e.subject == subject and e.kind == kind]
        if not found and kind == "batch":
            found = [e for e in self._entries if e.kind == kind]
        if not found:
            raise SchemaNotFound(f"no {kind} schema under subject {subject}")
        return max(found, key=lambda e: e.version)

    def entries(self) -> list[SchemaEntry]:
        return list(self._entries)

    def subjects(self) -> dict[str, list[SchemaEntry]]:
        """Subject -> its entries in version order."""
        out: dict[str, list[SchemaEntry]] = {}
        for e in sorted(self._entries, key=lambda e: (e.subject, e.version)):
            out.setdefault(e.subject, []).append(e)
        return out
