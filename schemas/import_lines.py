"""Lenient parsing of usage events written by other systems (JSON lines for `spendstream publish --file`, and the
future HTTP ingestion endpoint): turn what real exports contain into the contract's shape, before validation.

    from schemas.import_lines import normalize_event, EventFieldError
    try:
        event = UsageEvent.model_validate(normalize_event(json.loads(line)))
    except EventFieldError as exc:      # exc.field, exc.reason
        ...

What `normalize_event` accepts, all derived from the Avro schema `schemas/usage_event.avsc` (loaded with json),
not from a hand-written list:

- **Timestamps** (fields with `logicalType: timestamp-millis`, i.e. `event_time`): epoch milliseconds as an
  integer (a JSON number with no fraction, or a string of digits), or an RFC 3339 / ISO 8601 string **with an
  offset** — `2026-11-03T10:15:00Z`, `2026-11-03T10:15:00.250+01:00`, fractional seconds of any length
  (truncated to the millisecond). A timestamp without an offset is rejected: its instant is ambiguous.
- **`null` for an optional field** (a field with a default, or a union with `"null"`) means "use the default":
  the schema's default is put in its place (`"input_tokens": null` -> 0, `"attributes": null` -> {}).
- **`null` for, or absence of, a required field** (no default, not nullable: `event_id`, `event_time`,
  `provider`, `model`) is an error naming the field.

Everything else (unknown fields, types, ranges, allowed values) is left to `schemas.models.UsageEvent`.
"""

from __future__ import annotations

import copy
import functools
import json
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Mapping

__all__ = ["EventFieldError", "FieldSpec", "field_specs", "normalize_event", "parse_timestamp_ms", "SCHEMA_PATH"]

SCHEMA_PATH = Path(__file__).with_name("usage_event.avsc")
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_DIGITS = re.compile(r"^-?\d+$")
_NO_DEFAULT = object()


class EventFieldError(ValueError):
    """One field of an incoming event cannot be used; `field` names it (None: the record itself)."""

    def __init__(self, field: str | None, reason: str) -> None:
        super().__init__(f"{field}: {reason}" if field else reason)
        self.field, self.reason = field, reason


@dataclass(frozen=True)
class FieldSpec:
    name: str
    optional: bool
    default: Any          # the schema default (None for a nullable field without one)
    timestamp_ms: bool    # logicalType timestamp-millis


def _spec(field: Mapping[str, Any]) -> FieldSpec:
    ftype = field["type"]
    nullable = isinstance(ftype, list) and "null" in ftype
    has_default = "default" in field
    logical = ftype.get("logicalType") if isinstance(ftype, dict) else None
    return FieldSpec(name=field["name"], optional=has_default or nullable,
                     default=field["default"] if has_default else None,
                     timestamp_ms=logical == "timestamp-millis")


@functools.lru_cache(maxsize=None)
def field_specs(path: Path = SCHEMA_PATH) -> dict[str, FieldSpec]:
    """The fields of the UsageEvent record, in schema order."""
    schema = json.loads(Path(path).read_text())
    return {f["name"]: _spec(f) for f in schema["fields"]}


def parse_timestamp_ms(value: Any, field: str = "event_time") -> int:
    """Epoch ms (int, integral float, digit string) or an RFC 3339 / ISO 8601 string with an offset -> UTC ms."""
    if isinstance(value, bool):
        raise EventFieldError(field, f"expected epoch milliseconds or an RFC 3339 timestamp, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if value.is_integer():
            return int(value)
        raise EventFieldError(field, f"epoch milliseconds must be a whole number, got {value!r}")
    if isinstance(value, str):
        text = value.strip()
        if _DIGITS.match(text):
            return int(text)
        try:
            parsed = datetime.fromisoformat(text.upper())
        except ValueError:
            raise EventFieldError(field, f"not an RFC 3339 / ISO 8601 timestamp: {value!r}") from None
        if parsed.tzinfo is None or parsed.utcoffset() is None:
            raise EventFieldError(field, f"timestamp {value!r} has no UTC offset; add 'Z' or '+HH:MM'")
        return (parsed - _EPOCH) // timedelta(milliseconds=1)
    raise EventFieldError(field, f"expected epoch milliseconds or an RFC 3339 timestamp, got {type(value).__name__}")


def normalize_event(obj: Any, *, specs: Mapping[str, FieldSpec] | None = None) -> dict:
    """A copy of `obj` in the contract's shape: optional nulls replaced by their defaults, timestamps as UTC ms.
    Raises `EventFieldError` (with `field` and `reason`) on the first field that cannot be used."""
    if not isinstance(obj, dict):
        raise EventFieldError(None, f"expected a JSON object, got {type(obj).__name__}")
    specs = field_specs() if specs is None else specs
    out = dict(obj)
    for name, spec in specs.items():
        value = out.get(name, _NO_DEFAULT)
        if value is _NO_DEFAULT or value is None:
            if not spec.optional:
                raise EventFieldError(name, "required, but null" if value is None else "required, but missing")
            if value is None:
                out[name] = copy.deepcopy(spec.default)
            continue
        if spec.timestamp_ms:
            out[name] = parse_timestamp_ms(value, name)
    return out
