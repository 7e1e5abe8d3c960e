"""OpenAI and Anthropic wrappers through the real SDKs; httpx.MockTransport serves recorded JSON responses."""

from __future__ import annotations

import asyncio

import anthropic
import httpx
import httpx2  # this anthropic release ships on httpx2, a fork with the same API
import openai
import pytest

from integrations.anthropic_wrapper import instrument_anthropic
from integrations.openai_wrapper import instrument_openai

TAGS = {"team": "search", "cost_center": "cc-1", "use_case": "qa", "environment": "production",
        "workload_type": "inference"}

OPENAI_CHAT = {
    "id": "chatcmpl-abc123", "object": "chat.completion", "created": 1730000000, "model": "gpt-4o-2024-08-06",
    "service_tier": "default",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 2006, "completion_tokens": 300, "total_tokens": 2306,
              "prompt_tokens_details": {"cached_tokens": 1920, "audio_tokens": 0},
              "completion_tokens_details": {"reasoning_tokens": 64, "audio_tokens": 0}},
}
OPENAI_EMBED = {"object": "list", "model": "text-embedding-3-small",
                "data": [{"object": "embedding", "index": 0, "embedding": [0.1, 0.2]}],
                "usage": {"prompt_tokens": 8, "total_tokens": 8}}
ANTHROPIC_MSG = {
    "id": "msg_01XYZ", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
    "content": [{"type": "text", "text": "Hi"}], "stop_reason": "end_turn", "stop_sequence": None,
    "usage": {"input_tokens": 21, "output_tokens": 393, "cache_creation_input_tokens": 188086,
              "cache_read_input_tokens": 0},
}


class Recorder:
    def __init__(self):
        self.events = []

    def record(self, **fields):
        self.events.append(fields)


def _transport(routes, lib=httpx):
    def handle(request):
        status, body = routes[request.url.path]
        return lib.Response(status, json=body)
    return lib.MockTransport(handle)


def test_openai_chat_call_publishes_cached_and_reasoning_tokens_separately():
    rec = Recorder()
    client = openai.OpenAI(api_key="sk-test", base_url="http://api.test/v1", max_retries=0,
                           http_client=httpx.Client(transport=_transport({"/v1/chat/completions": (200, OPENAI_CHAT)})))
    instrument_openai(client, rec, tags=TAGS)
    resp = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}],
                                          spendstream_tags={"project": "faq"})
    assert resp.id == "chatcmpl-abc123"
    [ev] = rec.events
    assert (ev["input_tokens"], ev["cached_input_tokens"], ev["output_tokens"], ev["reasoning_tokens"]) == (86, 1920, 236, 64)
    assert (ev["provider"], ev["model"], ev["request_id"], ev["status"]) == ("openai", "gpt-4o-2024-08-06", "chatcmpl-abc123", "success")
    assert ev["team"] == "search" and ev["project"] == "faq" and ev["service_tier"] == "default"


def test_openai_embedding_call_is_metered_as_embedding():
    rec = Recorder()
    client = openai.OpenAI(api_key="sk-test", base_url="http://api.test/v1", max_retries=0,
                           http_client=httpx.Client(transport=_transport({"/v1/embeddings": (200, OPENAI_EMBED)})))
    instrument_openai(client, rec, tags=TAGS)
    client.embeddings.create(model="text-embedding-3-small", input="hello")
    assert [(e["operation"], e["input_tokens"], e["output_tokens"]) for e in rec.events] == [("embedding", 8, 0)]


def test_openai_error_response_publishes_an_error_event_and_still_raises():
    rec = Recorder()
    err = {"error": {"message": "Rate limit", "type": "rate_limit_error", "code": "rate_limit_exceeded"}}
    client = openai.OpenAI(api_key="sk-test", base_url="http://api.test/v1", max_retries=0,
                           http_client=httpx.Client(transport=_transport({"/v1/chat/completions": (429, err)})))
    instrument_openai(client, rec, tags=TAGS)
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    assert [(e["status"], e["model"]) for e in rec.events] == [("error", "gpt-4o")]


def test_anthropic_message_publishes_cache_write_tokens():
    rec = Recorder()
    client = anthropic.Anthropic(api_key="sk-ant-test", base_url="http://api.test", max_retries=0,
                                 http_client=httpx2.Client(transport=_transport({"/v1/messages": (200, ANTHROPIC_MSG)}, httpx2)))
    instrument_anthropic(client, rec, tags=TAGS)
    client.messages.create(model="claude-sonnet-4-5", max_tokens=1024, messages=[{"role": "user", "content": "hi"}])
    [ev] = rec.events
    assert (ev["input_tokens"], ev["output_tokens"], ev["cache_write_tokens"], ev["cached_input_tokens"]) == (21, 393, 188086, 0)
    assert (ev["provider"], ev["request_id"]) == ("anthropic", "msg_01XYZ")


def test_async_anthropic_client_is_metered_too():
    rec = Recorder()
    client = anthropic.AsyncAnthropic(
        api_key="sk-ant-test", base_url="http://api.test", max_retries=0,
        http_client=httpx2.AsyncClient(transport=_transport({"/v1/messages": (200, ANTHROPIC_MSG)}, httpx2)))
    instrument_anthropic(client, rec, tags=TAGS)

    async def go():
        return await client.messages.create(model="claude-sonnet-4-5", max_tokens=10,
                                            messages=[{"role": "user", "content": "hi"}])
    assert asyncio.run(go()).id == "msg_01XYZ"
    assert len(rec.events) == 1 and rec.events[0]["cache_write_tokens"] == 188086
