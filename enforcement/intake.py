"""What HTTP ingestion (`/v1/events`) and OTLP ingestion share: reading a bounded body, and admitting events.

`read_body` reads at most `max_body_bytes` (after gzip / deflate decoding, so a small compressed body cannot
expand past the limit) and raises `PayloadTooLarge` (413) past it, `MalformedBody` (400) for an encoding it
cannot read. `EventIntake.admit` turns candidate event dicts into published events or per-event rejects:

1. the key's team rules (`Principal.ingest_team`): an event naming no team gets the key's only team; an event
   naming a team outside the key's is rejected (field `team`);
2. `source` defaults to `import` and `attributes["ingest"]` to the way in (`http`, `otlp`), so reports can tell
   these events apart without a new value in the contract;
3. the contract: `schemas.import_lines.normalize_event` (RFC 3339 or epoch-ms `event_time`, nulls as defaults,
   required fields present) then `schemas.models.UsageEvent` (types, ranges, allowed values, no unknown fields);
4. accepted events go to the `UsagePublisher` (the idempotent Kafka publisher, which spools to disk while the
   broker is down), so the worker dedupes them on `event_id` like any redelivery: a retried POST is harmless.

Never raises for bad input: every problem with one event is a reject `(index, field, reason)`.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Any, Iterable

from fastapi import Request
from pydantic import BaseModel, ValidationError

from enforcement.auth import Principal
from enforcement.errors import Forbidden, MalformedBody, PayloadTooLarge
from schemas.import_lines import EventFieldError, normalize_event
from schemas.models import UsageEvent
from spendstream.ports import UsagePublisher

__all__ = ["IngestLimits", "Reject", "Admitted", "EventIntake", "read_body"]

DEFAULT_SOURCE = "import"
_INT64_MAX = 2**63 - 1      # Avro long: a larger count passes the model but could not be encoded


@dataclass(frozen=True)
class IngestLimits:
    """Per-request limits of both ingestion endpoints (Settings `api.ingest_max_body_bytes` / `_max_events`)."""

    max_body_bytes: int = 5_000_000
    max_events: int = 5_000


class Reject(BaseModel):
    """One event that was not accepted: its position in the request, the field at fault (None: the whole
    event), and why."""

    index: int
    field: str | None = None
    reason: str


@dataclass
class Admitted:
    accepted: list[str] = field(default_factory=list)        # event ids, in request order
    rejected: list[Reject] = field(default_factory=list)


async def read_body(request: Request, limits: IngestLimits) -> bytes:
    """The request body, decoded from `Content-Encoding: gzip | deflate | identity`, at most
    `limits.max_body_bytes` long. Raises PayloadTooLarge past the limit, MalformedBody for a bad encoding."""
    limit = limits.max_body_bytes
    too_large = PayloadTooLarge(f"request body over the limit of {limit} bytes: send smaller batches")
    declared = request.headers.get("content-length", "")
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding in ("", "identity") and declared.isdigit() and int(declared) > limit:
        raise too_large
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > limit:
            raise too_large
    if encoding in ("", "identity"):
        return bytes(raw)
    if encoding not in ("gzip", "deflate"):
        raise MalformedBody(f"unsupported Content-Encoding {encoding!r}: use gzip, deflate or none")
    inflater = zlib.decompressobj(wbits=31 if encoding == "gzip" else 15)
    try:
        out = inflater.decompress(bytes(raw), limit + 1)
    except zlib.error as exc:
        raise MalformedBody(f"body is not valid {encoding}: {exc}") from exc
    if len(out) > limit:
        raise too_large
    return out


def _validation_reject(index: int, exc: ValidationError) -> Reject:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or None
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return Reject(index=index, field=where, reason=f"{first['msg']}{more}")


class EventIntake:
    """Admits candidate events for a caller and publishes the valid ones. Holds no per-request state."""

    def __init__(self, publisher: UsagePublisher, limits: IngestLimits = IngestLimits()) -> None:
        self.publisher, self.limits = publisher, limits

    def check_batch(self, count: int) -> None:
        """Raises PayloadTooLarge when a request carries more events than the limit."""
        if count > self.limits.max_events:
            raise PayloadTooLarge(f"{count} events in one request, over the limit of {self.limits.max_events}: "
                                  "send smaller batches")

    def admit(self, who: Principal, candidates: Iterable[tuple[int, Any]], way: str) -> Admitted:
        """`candidates`: (index, event dict, or a Reject already made by the parser). Publishes the valid events
        and returns their ids and the rejects."""
        out = Admitted()
        for index, raw in candidates:
            if isinstance(raw, Reject):
                out.rejected.append(raw)
                continue
            try:
                event = self._validated(who, raw, way)
            except EventFieldError as exc:
                out.rejected.append(Reject(index=index, field=exc.field, reason=exc.reason))
                continue
            except Forbidden as exc:
                out.rejected.append(Reject(index=index, field="team", reason=str(exc)))
                continue
            except ValidationError as exc:
                out.rejected.append(_validation_reject(index, exc))
                continue
            event_id = self.publisher.record_event(event)
            if event_id is None:
                out.rejected.append(Reject(index=index, reason="could not be queued for publishing; retry"))
            else:
                out.accepted.append(event_id)
        return out

    @staticmethod
    def _validated(who: Principal, raw: Any, way: str) -> dict:
        if not isinstance(raw, dict):
            raise EventFieldError(None, f"expected a JSON object, got {type(raw).__name__}")
        event = dict(raw)
        event["team"] = who.ingest_team(event.get("team") or None)
        if event.get("source") is None:
            event["source"] = DEFAULT_SOURCE
        attributes = event.get("attributes")
        if attributes is None or isinstance(attributes, dict):
            event["attributes"] = {"ingest": way, **(attributes or {})}
        valid = UsageEvent.model_validate(normalize_event(event)).model_dump()
        for name, value in valid.items():
            if isinstance(value, int) and not isinstance(value, bool) and value > _INT64_MAX:
                raise EventFieldError(name, f"{value} is larger than a 64-bit count")
        return valid
