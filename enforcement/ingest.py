"""`POST /v1/events`: usage events over HTTP, for producers that cannot speak Kafka + Avro.

Body: a JSON array of usage events, or JSON lines (one event per line; `application/x-ndjson`), or one JSON
object. Each event is in the contract's shape (`schemas/usage_event.avsc`) and carries its producer-made
`event_id`, so a retried POST is deduplicated by the worker like any redelivery. Needs a key of scope `ingest`
(or admin); see `enforcement.intake` for team stamping, validation and publishing.

Answers:
  202  {"accepted": n, "rejected": [{"index", "field", "reason"}, ...]} - some or all events may be rejected;
       accepted events are queued for the usage topic (spooled to disk while the broker is down)
  400  a body that is not JSON at all (an unreadable line of JSON lines is a per-event reject instead)
  401 / 403  no key / a key without scope ingest
  413  body over `api.ingest_max_body_bytes` or more than `api.ingest_max_events` events, with a JSON message
"""

from __future__ import annotations

import json
from typing import Any, Callable

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from enforcement.auth import Principal
from enforcement.errors import MalformedBody
from enforcement.intake import Admitted, EventIntake, Reject, read_body

__all__ = ["ingest_router", "parse_events", "IngestResponse"]


class IngestResponse(BaseModel):
    accepted: int
    rejected: list[Reject]


_BODY_DOC = {"requestBody": {"required": True, "content": {
    "application/json": {"schema": {"type": "array", "items": {"type": "object"}}},
    "application/x-ndjson": {"schema": {"type": "string"}},
}}}


def parse_events(body: bytes) -> list[tuple[int, Any]]:
    """(index, event dict or Reject) for every event in `body`. Raises MalformedBody when the body as a whole
    is not JSON (an array, an object, or JSON lines)."""
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise MalformedBody(f"body is not UTF-8: {exc}") from exc
    head = text.lstrip()[:1]
    if not head:
        raise MalformedBody("empty body: send a JSON array or JSON lines of usage events")
    if head not in "[{":
        raise MalformedBody("body is neither a JSON array nor JSON lines of objects")
    try:
        whole = json.loads(text)
    except (ValueError, RecursionError) as exc:
        if head == "[":
            raise MalformedBody(f"body is not a JSON array: {exc}") from None
        whole = None                # several objects: JSON lines
    if isinstance(whole, list):
        return list(enumerate(whole))
    if isinstance(whole, dict):
        return [(0, whole)]
    out: list[tuple[int, Any]] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        index = len(out)
        try:
            out.append((index, json.loads(line)))
        except (ValueError, RecursionError) as exc:
            out.append((index, Reject(index=index, reason=f"not JSON: {exc}")))
    return out


def _admit(intake: EventIntake, who: Principal, body: bytes) -> Admitted:
    """Parse, validate and publish off the event loop: a 5,000-event batch takes tens of ms of CPU, which must
    not stall /v1/check answers on the same loop."""
    events = parse_events(body)
    intake.check_batch(len(events))
    return intake.admit(who, events, "http")


def ingest_router(intake: EventIntake, principal: Callable[..., Any], on_admitted: Callable | None = None
                  ) -> APIRouter:
    """The `/v1/events` route. `principal` is the API's key dependency; `on_admitted(way, admitted)` counts."""
    router = APIRouter(tags=["ingestion"])

    @router.post("/v1/events", status_code=202, response_model=IngestResponse, openapi_extra=_BODY_DOC,
                 responses={400: {"description": "not JSON"}, 413: {"description": "body or batch too large"}})
    async def ingest(request: Request, who: Principal = Depends(principal)) -> JSONResponse:
        """Publish usage events sent as a JSON array or JSON lines; answers which were rejected and why."""
        who.require_ingest()
        body = await read_body(request, intake.limits)
        admitted = await run_in_threadpool(_admit, intake, who, body)
        if on_admitted is not None:
            on_admitted("http", admitted)
        body = IngestResponse(accepted=len(admitted.accepted), rejected=admitted.rejected)
        return JSONResponse(body.model_dump(), status_code=202)

    return router
