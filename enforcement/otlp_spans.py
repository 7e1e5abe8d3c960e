"""OpenTelemetry GenAI spans -> usage events (the candidates `enforcement.intake` admits).

**Which spans count** - one usage event per model call, so a call seen by a framework span *and* a client span
is counted once: a span counts when all of these hold:
  * its kind is CLIENT (client instrumentations of OpenAI, Anthropic, Bedrock, ... emit CLIENT spans for the
    request that leaves the process; framework / agent spans wrapping them are INTERNAL);
  * `gen_ai.operation.name` is `chat`, `text_completion`, `embeddings` or `generate_content` (agent, tool,
    retrieval and workflow spans never count);
  * it carries at least one `gen_ai.usage.*` token attribute.
Every other span is ignored (not an error). A span that counts but cannot be made into a valid event (no model,
bad token count, ...) is rejected and reported in the OTLP `partial_success`.

**Fields** (span attributes win over resource attributes; `spendstream.*` attributes win over `gen_ai.*`):

| event field | from |
|---|---|
| `event_id` | `otel-<trace id hex>-<span id hex>`: an exporter retry of the same span dedupes in the worker |
| `event_time` | span end time (start time when the end is missing), ns -> ms |
| `provider` | `gen_ai.provider.name`, else `gen_ai.system`; OTel names mapped (`aws.bedrock` -> `aws-bedrock`, `azure.ai.openai` -> `azure-openai`, `gcp.*` / `gemini` / `vertex_ai` -> `google`, `x_ai` -> `xai`, `mistral_ai` -> `mistral`) |
| `model` | `gen_ai.response.model`, else `gen_ai.request.model` |
| `operation` | chat / generate_content -> `chat`, text_completion -> `completion`, embeddings -> `embedding` |
| `input_tokens` | `gen_ai.usage.input_tokens` (or the old `prompt_tokens`) **minus** cache reads and writes: OTel's input count includes them, our contract's does not |
| `cached_input_tokens` | `gen_ai.usage.cache_read.input_tokens` (or `cache_read_input_tokens`) |
| `cache_write_tokens` | `gen_ai.usage.cache_creation.input_tokens` (or `cache_creation_input_tokens`) |
| `output_tokens` | `gen_ai.usage.output_tokens` (or `completion_tokens`) minus reasoning tokens |
| `reasoning_tokens` | `gen_ai.usage.reasoning.output_tokens` |
| `status` | `error` when the span status is ERROR, else `success` |
| `request_id` | `gen_ai.response.id` |
| `service_tier` | `openai.response.service_tier` |
| tags | `spendstream.team`, `.cost_center`, `.use_case`, `.environment`, `.workload_type`, `.project`, `.customer`, `.user_hash`, `.activity_type`, `.activity_id`, `.reservation_id`; `environment` falls back to `deployment.environment.name` (or `deployment.environment`) when it is one of ours, `workload_type` to `embedding` for embeddings and `inference` otherwise |
| `attributes` | `ingest=otlp`, `otel.service_name` = resource `service.name` |

A span with `spendstream.skip = true` (span or resource) is ignored: set it where a call is already metered by
another way in (a wrapper, the LiteLLM hook) so the same call is not metered twice.
"""

from __future__ import annotations

from typing import Any, Iterator

from enforcement.intake import Reject
from schemas.models import ENVIRONMENTS

__all__ = ["span_events", "COUNTED_OPERATIONS", "PROVIDER_NAMES", "TAG_ATTRIBUTES"]

SPAN_KIND_CLIENT = 3
STATUS_CODE_ERROR = 2
COUNTED_OPERATIONS = {"chat": "chat", "generate_content": "chat", "text_completion": "completion",
                      "embeddings": "embedding"}
PROVIDER_NAMES = {"aws.bedrock": "aws-bedrock", "azure.ai.openai": "azure-openai", "azure.ai.inference": "azure",
                  "az.ai.inference": "azure", "az.ai.openai": "azure-openai", "gcp.gen_ai": "google",
                  "gcp.vertex_ai": "google", "gcp.gemini": "google", "vertex_ai": "google", "gemini": "google",
                  "x_ai": "xai", "mistral_ai": "mistral", "ibm.watsonx.ai": "ibm"}
TAG_ATTRIBUTES = ("team", "cost_center", "use_case", "environment", "workload_type", "project", "customer",
                  "user_hash", "activity_type", "activity_id", "reservation_id")
_INPUT = ("gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens")
_OUTPUT = ("gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens")
_CACHE_READ = ("gen_ai.usage.cache_read.input_tokens", "gen_ai.usage.cache_read_input_tokens")
_CACHE_WRITE = ("gen_ai.usage.cache_creation.input_tokens", "gen_ai.usage.cache_creation_input_tokens")
_REASONING = ("gen_ai.usage.reasoning.output_tokens",)
_ENVIRONMENTS = frozenset(ENVIRONMENTS)


def _value(any_value: Any) -> Any:
    kind = any_value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [_value(v) for v in any_value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _value(kv.value) for kv in any_value.kvlist_value.values}
    return getattr(any_value, kind)


def _attributes(key_values: Any) -> dict[str, Any]:
    return {kv.key: _value(kv.value) for kv in key_values}


def _count(attrs: dict[str, Any], names: tuple[str, ...]) -> int:
    """The first present attribute of `names` as a token count; raises ValueError for a non-count."""
    for name in names:
        value = attrs.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise ValueError(f"{name}: not a whole token count: {value!r}")
        try:
            return int(value)
        except (TypeError, ValueError):
            raise ValueError(f"{name}: not a token count: {value!r}") from None
    return 0


def _counts(attrs: dict[str, Any]) -> bool:
    return any(k.startswith("gen_ai.usage.") and k.endswith("tokens") for k in attrs)


def _event(span: Any, attrs: dict[str, Any], resource: dict[str, Any]) -> dict:
    """The usage event of one counted span (`attrs`: resource attributes overlaid with the span's)."""
    operation = COUNTED_OPERATIONS[attrs["gen_ai.operation.name"]]
    raw_provider = attrs.get("gen_ai.provider.name") or attrs.get("gen_ai.system")
    provider = PROVIDER_NAMES.get(str(raw_provider), raw_provider) if raw_provider else None
    cache_read, cache_write = _count(attrs, _CACHE_READ), _count(attrs, _CACHE_WRITE)
    reasoning = _count(attrs, _REASONING)
    ends = span.end_time_unix_nano or span.start_time_unix_nano
    event: dict[str, Any] = {
        "event_id": f"otel-{span.trace_id.hex()}-{span.span_id.hex()}",
        "event_time": ends // 1_000_000 if ends else None,
        "provider": provider, "model": attrs.get("gen_ai.response.model") or attrs.get("gen_ai.request.model"),
        "operation": operation,
        "input_tokens": max(_count(attrs, _INPUT) - cache_read - cache_write, 0),
        "output_tokens": max(_count(attrs, _OUTPUT) - reasoning, 0),
        "cached_input_tokens": cache_read, "cache_write_tokens": cache_write, "reasoning_tokens": reasoning,
        "status": "error" if span.status.code == STATUS_CODE_ERROR else "success",
        "request_id": attrs.get("gen_ai.response.id"),
        "service_tier": attrs.get("openai.response.service_tier"),
        "attributes": {"ingest": "otlp", **({"otel.service_name": str(resource["service.name"])}
                                          if resource.get("service.name") else {})},
    }
    for tag in TAG_ATTRIBUTES:
        value = attrs.get(f"spendstream.{tag}")
        event[tag] = str(value) if value not in (None, "") else None
    deployment = attrs.get("deployment.environment.name") or attrs.get("deployment.environment")
    if event["environment"] is None and deployment in _ENVIRONMENTS:
        event["environment"] = deployment
    if event["workload_type"] is None:
        event["workload_type"] = "embedding" if operation == "embedding" else "inference"
    return event


def span_events(request: Any) -> Iterator[tuple[int, dict | Reject]]:
    """(index, event or Reject) for every counted span of an `ExportTraceServiceRequest`; `index` is the
    span's position among all spans of the request."""
    index = -1
    for resource_spans in request.resource_spans:
        resource = _attributes(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                index += 1
                attrs = {**resource, **_attributes(span.attributes)}
                if (span.kind != SPAN_KIND_CLIENT or attrs.get("gen_ai.operation.name") not in COUNTED_OPERATIONS
                        or not _counts(attrs) or attrs.get("spendstream.skip") in (True, "true")):
                    continue
                try:
                    yield index, _event(span, attrs, resource)
                except ValueError as exc:
                    field, _, reason = str(exc).partition(": ")
                    yield index, Reject(index=index, field=field, reason=reason)
