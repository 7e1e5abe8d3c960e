"""POST /v1/otlp/v1/traces on real Redis keys: which spans count, how they map, OTLP answers and errors.

Protobuf bodies are encoded by the real opentelemetry-sdk (its OTLP encoder, over spans the SDK recorded); the
exporter's own HTTP path against a running API, through the worker to Redis, is in test_ingest_end_to_end.py.
"""

from __future__ import annotations

import json

import httpx
import pytest
import pytest_asyncio
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode

from enforcement.api import create_app
from enforcement.auth import ApiKeys
from enforcement.intake import EventIntake, IngestLimits
from tests.integration.test_enforcement_reservations import make_env
from tests.integration.test_http_ingest import Recorder

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

PATH = "/v1/otlp/v1/traces"
RESOURCE = {"service.name": "support-bot", "spendstream.cost_center": "cc-7", "spendstream.use_case": "support",
            "deployment.environment.name": "staging"}


def record_spans(resource=RESOURCE) -> tuple[list, InMemorySpanExporter]:
    """A framework span wrapping a client chat span, a cached Anthropic call, an embedding, a failed call, and
    spans that must not count (agent, no usage, INTERNAL chat, opted out) - recorded by the real SDK."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create(resource))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("test")
    usage = {"gen_ai.usage.input_tokens": 1200, "gen_ai.usage.output_tokens": 300}
    with tracer.start_as_current_span("invoke_agent triage", kind=SpanKind.INTERNAL,
                                      attributes={"gen_ai.operation.name": "invoke_agent", **usage}):
        with tracer.start_as_current_span("chat gpt-4o", kind=SpanKind.INTERNAL,   # framework: same call
                                          attributes={"gen_ai.operation.name": "chat", **usage}):
            with tracer.start_as_current_span("chat gpt-4o", kind=SpanKind.CLIENT, attributes={
                    "gen_ai.operation.name": "chat", "gen_ai.system": "openai", "gen_ai.request.model": "gpt-4o",
                    "gen_ai.response.model": "gpt-4o-2024-08-06", "gen_ai.response.id": "chatcmpl-1",
                    "spendstream.team": "payments", **usage}):
                pass
    with tracer.start_as_current_span("chat claude", kind=SpanKind.CLIENT, attributes={
            "gen_ai.operation.name": "chat", "gen_ai.provider.name": "anthropic",
            "gen_ai.request.model": "claude-sonnet-4-5", "gen_ai.usage.input_tokens": 5000,
            "gen_ai.usage.cache_read.input_tokens": 3000, "gen_ai.usage.cache_creation.input_tokens": 1000,
            "gen_ai.usage.output_tokens": 200, "spendstream.use_case": "summaries"}):
        pass
    with tracer.start_as_current_span("embeddings", kind=SpanKind.CLIENT, attributes={
            "gen_ai.operation.name": "embeddings", "gen_ai.provider.name": "aws.bedrock",
            "gen_ai.request.model": "amazon.titan-embed-text-v2:0", "gen_ai.usage.input_tokens": 64}):
        pass
    with tracer.start_as_current_span("chat failed", kind=SpanKind.CLIENT, attributes={
            "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o",
            "gen_ai.usage.input_tokens": 10}) as failed:
        failed.set_status(Status(StatusCode.ERROR, "rate limited"))
    for attrs in ({"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o"},            # no usage
                  {"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o", "spendstream.skip": True,
                   **usage}):                                                                       # opted out
        with tracer.start_as_current_span("ignored", kind=SpanKind.CLIENT, attributes=attrs):
            pass
    return memory.get_finished_spans(), memory


@pytest_asyncio.fixture
async def api(isolated):
    env = make_env(isolated.servers.redis_url, isolated.prefix)
    ak = ApiKeys(env.r, isolated.prefix)
    keys = {"pay": (await ak.create("pay-otel", "ingest", ["payments"]))[0],
            "any": (await ak.create("collector", "ingest", ["*"]))[0]}
    sink = Recorder()
    app = create_app(env.checker, ak, intake=EventIntake(sink, IngestLimits(max_body_bytes=50_000, max_events=20)))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as client:
        async def post(who, body, content_type="application/x-protobuf", **headers):
            return await client.post(PATH, content=body, headers={
                "Authorization": f"Bearer {keys[who]}", "Content-Type": content_type, **headers})
        yield post, sink
    await env.r.aclose()


async def test_only_client_model_call_spans_count_and_map_to_usage_events(api):
    post, sink = api
    spans, _ = record_spans()
    resp = await post("any", encode_spans(spans).SerializeToString())
    assert resp.status_code == 200 and resp.headers["content-type"] == "application/x-protobuf"
    reply = ExportTraceServiceResponse.FromString(resp.content)
    assert reply.partial_success.rejected_spans == 0
    by_model = {e["model"]: e for e in sink.events}
    assert sorted(by_model) == ["amazon.titan-embed-text-v2:0", "claude-sonnet-4-5", "gpt-4o", "gpt-4o-2024-08-06"]
    openai_call = by_model["gpt-4o-2024-08-06"]
    client_span = next(s for s in spans if s.kind is SpanKind.CLIENT and s.attributes.get("gen_ai.response.id") == "chatcmpl-1")
    ctx = client_span.get_span_context()
    assert openai_call["event_id"] == f"otel-{ctx.trace_id:032x}-{ctx.span_id:016x}"
    assert openai_call["event_time"] == client_span.end_time // 1_000_000
    assert (openai_call["provider"], openai_call["input_tokens"], openai_call["output_tokens"]) == ("openai", 1200, 300)
    assert (openai_call["team"], openai_call["use_case"], openai_call["cost_center"]) == ("payments", "support", "cc-7")
    assert (openai_call["environment"], openai_call["workload_type"]) == ("staging", "inference")
    assert openai_call["request_id"] == "chatcmpl-1"
    assert openai_call["attributes"] == {"ingest": "otlp", "otel.service_name": "support-bot"}
    claude = by_model["claude-sonnet-4-5"]          # OTel input includes the cache buckets; ours does not
    assert (claude["input_tokens"], claude["cached_input_tokens"], claude["cache_write_tokens"]) == (1000, 3000, 1000)
    assert claude["use_case"] == "summaries"        # span attribute wins over the resource's
    embedding = by_model["amazon.titan-embed-text-v2:0"]
    assert (embedding["provider"], embedding["operation"], embedding["workload_type"]) == \
        ("aws-bedrock", "embedding", "embedding")
    assert by_model["gpt-4o"]["status"] == "error"


async def test_otlp_json_with_hex_ids_is_read_and_answered_in_json(api):
    post, sink = api
    body = {"resourceSpans": [{"resource": {"attributes": [
        {"key": "spendstream.team", "value": {"stringValue": "payments"}}]}, "scopeSpans": [{"spans": [{
            "traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174", "name": "chat",
            "kind": 3, "startTimeUnixNano": "1793700900000000000", "endTimeUnixNano": "1793700901500000000",
            "attributes": [{"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}},
                           {"key": "gen_ai.provider.name", "value": {"stringValue": "openai"}},
                           {"key": "gen_ai.request.model", "value": {"stringValue": "gpt-4o-mini"}},
                           {"key": "gen_ai.usage.input_tokens", "value": {"intValue": "42"}},
                           {"key": "gen_ai.usage.output_tokens", "value": {"intValue": 7}}]}]}]}]}
    resp = await post("pay", json.dumps(body), "application/json")
    assert resp.status_code == 200 and resp.headers["content-type"] == "application/json"
    assert resp.json() == {}
    [ev] = sink.events
    assert ev["event_id"] == "otel-5b8efff798038103d269b633813fc60c-eee19b7ec3c1b174"
    assert (ev["event_time"], ev["input_tokens"], ev["output_tokens"]) == (1793700901500, 42, 7)


async def test_spans_that_cannot_be_events_are_reported_as_partial_success(api):
    post, sink = api
    spans, _ = record_spans({**RESOURCE, "spendstream.team": "search"})     # outside the key's team
    resp = await post("pay", encode_spans(spans).SerializeToString())
    reply = ExportTraceServiceResponse.FromString(resp.content)
    assert resp.status_code == 200
    assert reply.partial_success.rejected_spans == 3                        # all but the span naming payments
    assert "may not send events for team 'search'" in reply.partial_success.error_message
    assert [e["team"] for e in sink.events] == ["payments"]


@pytest.mark.parametrize("body,content_type,status", [
    (b"\xff\xff\xff", "application/x-protobuf", 400),
    (b"{nope", "application/json", 400),
    (b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "zz"}]}]}]}', "application/json", 400),
    (b"x" * 60_000, "application/x-protobuf", 413),
])
async def test_unreadable_or_oversized_exports_are_4xx(api, body, content_type, status):
    post, sink = api
    resp = await post("pay", body, content_type)
    assert resp.status_code == status, resp.text
    assert resp.json()["error"] and sink.events == []
