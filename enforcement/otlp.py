"""`POST /v1/otlp/v1/traces`: OTLP/HTTP trace exports (protobuf or JSON), GenAI model-call spans -> usage events.

Point an exporter at it: the OpenTelemetry SDK's `OTLPSpanExporter(endpoint="http://<api>/v1/otlp/v1/traces",
headers={"Authorization": "Bearer <ingest key>"})`, or a Collector's `otlphttp` exporter with
`endpoint: http://<api>/v1/otlp` (it appends `/v1/traces`; gzip is read). Which spans count and how they map:
`enforcement.otlp_spans`. Team stamping, validation and publishing: `enforcement.intake` (key scope `ingest`).

Answers, as OTLP/HTTP expects: 200 with an `ExportTraceServiceResponse` in the request's encoding
(`application/x-protobuf` or `application/json`); counted spans that could not be turned into events are
reported in `partial_success` (`rejected_spans`, `error_message` with the first reasons), so exporters do not
retry them. An unreadable body is a 400, an oversized one a 413 (not retried by exporters); other spans are
ignored. OTLP/JSON's hex trace / span ids are handled (protobuf's JSON mapping would expect base64).
"""

from __future__ import annotations

import base64
import json
from typing import Any, Callable

from fastapi import APIRouter, Depends, Request, Response
from starlette.concurrency import run_in_threadpool
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (ExportTraceServiceRequest,
                                                                      ExportTraceServiceResponse)

from enforcement.auth import Principal
from enforcement.errors import MalformedBody
from enforcement.intake import Admitted, EventIntake, read_body
from enforcement.otlp_spans import span_events

__all__ = ["otlp_router", "decode_traces", "OTLP_TRACES_PATH"]

OTLP_TRACES_PATH = "/v1/otlp/v1/traces"
PROTOBUF = "application/x-protobuf"
_ID_KEYS = frozenset({"traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id"})
_BODY_DOC = {"requestBody": {"required": True, "content": {
    PROTOBUF: {"schema": {"type": "string", "format": "binary"}},
    "application/json": {"schema": {"type": "object", "properties": {"resourceSpans": {"type": "array"}}}},
}}}


def _hex_ids_to_base64(node: Any) -> Any:
    """OTLP/JSON writes trace and span ids as hex; protobuf's JSON parser wants bytes as base64."""
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key in _ID_KEYS and isinstance(value, str):
                try:
                    value = base64.b64encode(bytes.fromhex(value)).decode()
                except ValueError:
                    raise MalformedBody(f"{key} is not hex: {value!r}") from None
            out[key] = _hex_ids_to_base64(value)
        return out
    if isinstance(node, list):
        return [_hex_ids_to_base64(v) for v in node]
    return node


def _is_json(content_type: str) -> bool:
    return content_type.split(";")[0].strip().lower() == "application/json"


def decode_traces(body: bytes, content_type: str) -> ExportTraceServiceRequest:
    """The export request in `body` (protobuf unless the content type is application/json). Raises
    MalformedBody when it cannot be parsed."""
    request = ExportTraceServiceRequest()
    if _is_json(content_type):
        try:
            data = json.loads(body)
        except (ValueError, RecursionError) as exc:
            raise MalformedBody(f"OTLP/JSON body is not JSON: {exc}") from None
        if not isinstance(data, dict):
            raise MalformedBody("OTLP/JSON body must be an object with resourceSpans")
        try:
            json_format.ParseDict(_hex_ids_to_base64(data), request, ignore_unknown_fields=True)
        except (json_format.ParseError, ValueError, TypeError, RecursionError) as exc:
            raise MalformedBody(f"not an OTLP/JSON trace export: {exc}") from None
        return request
    try:
        request.ParseFromString(body)
    except (DecodeError, ValueError, RecursionError) as exc:
        raise MalformedBody(f"not an OTLP protobuf trace export: {exc}") from None
    return request


def _answer(rejected: list, json_out: bool) -> Response:
    reply = ExportTraceServiceResponse()
    if rejected:
        reply.partial_success.rejected_spans = len(rejected)
        reply.partial_success.error_message = "; ".join(
            f"span {r.index}: {r.field + ': ' if r.field else ''}{r.reason}" for r in rejected[:5])
    if json_out:
        return Response(json_format.MessageToJson(reply, indent=None), media_type="application/json")
    return Response(reply.SerializeToString(), media_type=PROTOBUF)


def _admit(intake: EventIntake, who: Principal, body: bytes, content_type: str) -> Admitted:
    """Decode, map, validate and publish off the event loop (CPU work; /v1/check shares the loop)."""
    export = decode_traces(body, content_type)
    intake.check_batch(sum(len(s.spans) for rs in export.resource_spans for s in rs.scope_spans))
    return intake.admit(who, span_events(export), "otlp")


def otlp_router(intake: EventIntake, principal: Callable[..., Any], on_admitted: Callable | None = None
                ) -> APIRouter:
    """The OTLP traces route. `principal` is the API's key dependency; `on_admitted(way, admitted)` counts."""
    router = APIRouter(tags=["ingestion"])

    @router.post(OTLP_TRACES_PATH, openapi_extra=_BODY_DOC, response_class=Response,
                 responses={200: {"content": {PROTOBUF: {}, "application/json": {}}},
                            400: {"description": "not an OTLP trace export"},
                            413: {"description": "body or span count too large"}})
    async def traces(request: Request, who: Principal = Depends(principal)) -> Response:
        """OTLP/HTTP trace export; each GenAI model-call span becomes one usage event."""
        who.require_ingest()
        content_type = request.headers.get("content-type", PROTOBUF)
        body = await read_body(request, intake.limits)
        admitted = await run_in_threadpool(_admit, intake, who, body, content_type)
        if on_admitted is not None:
            on_admitted("otlp", admitted)
        return _answer(admitted.rejected, _is_json(content_type))

    return router
