"""spend_guard through the real OpenAI and Anthropic clients (httpx.MockTransport serves the model): a deny raises
before any request leaves and publishes nothing, a downgrade swaps the model, the event carries the hold, a
failed call releases it; async clients take an async checker, sync clients a sync one."""

from __future__ import annotations

import asyncio
import json

import anthropic
import httpx
import httpx2
import openai
import pytest

from integrations.anthropic_wrapper import instrument_anthropic
from integrations.errors import BudgetDenied, EnforcementUnavailable
from integrations.openai_wrapper import instrument_openai
from integrations.spend_guard import spend_guard

TAGS = {"team": "search", "cost_center": "cc-1", "use_case": "qa", "environment": "production",
        "workload_type": "inference"}
MSG = [{"role": "user", "content": "What is the capital of France?"}]
CHAT = {"id": "c1", "object": "chat.completion", "created": 0, "model": "gpt-4o",
        "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "Paris"}}],
        "usage": {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15}}


class Recorder:
    def __init__(self):
        self.events, self.denied = [], 0

    def record(self, **fields):
        self.events.append(fields)

    def count_denied(self):
        self.denied += 1


class SyncChecker:
    def __init__(self, answer=None, fail=False):
        self.answer, self.fail = answer or {"decision": "allow", "reason": "ok", "reservation_id": "r-1"}, fail
        self.requests, self.released = [], []

    def check(self, request):
        self.requests.append(request)
        if self.fail:
            raise EnforcementUnavailable("down")
        return self.answer

    def release(self, reservation_id):
        self.released.append(reservation_id)
        return True


class AsyncChecker(SyncChecker):
    async def check(self, request):
        return SyncChecker.check(self, request)

    async def release(self, reservation_id):
        return SyncChecker.release(self, reservation_id)


def openai_client(sent, status=200, async_=False):
    def handle(request):
        sent.append(json.loads(request.content))
        return httpx.Response(status, json=CHAT if status == 200 else {"error": {"message": "boom"}})
    if async_:
        return openai.AsyncOpenAI(api_key="k", max_retries=0, http_client=httpx.AsyncClient(
            transport=httpx.MockTransport(handle)))
    return openai.OpenAI(api_key="k", max_retries=0, http_client=httpx.Client(transport=httpx.MockTransport(handle)))


def test_allow_reserves_and_the_event_carries_the_hold():
    sent, pub, checker = [], Recorder(), SyncChecker()
    client = instrument_openai(openai_client(sent), pub, tags=TAGS, checker=checker)
    client.chat.completions.create(model="gpt-4o", messages=MSG, max_tokens=50)
    [req] = checker.requests
    assert (req["provider"], req["model"], req["reserve"], req["estimated_output_tokens"]) == ("openai", "gpt-4o", True, 50)
    assert req["estimated_input_tokens"] == 8                     # 30 characters / 4, rounded up
    [ev] = pub.events
    assert (ev["reservation_id"], ev["input_tokens"], ev["status"]) == ("r-1", 12, "success")


def test_a_deny_raises_before_any_request_leaves_and_publishes_nothing():
    sent, pub = [], Recorder()
    checker = SyncChecker({"decision": "deny", "reason": "budget b: this call is estimated at 1.0 USD, 0.2 USD left"})
    client = instrument_openai(openai_client(sent), pub, tags=TAGS, checker=checker)
    with pytest.raises(BudgetDenied, match="estimated at 1.0 USD"):
        client.chat.completions.create(model="gpt-4o", messages=MSG)
    assert (sent, pub.events, pub.denied) == ([], [], 1)


def test_a_downgrade_swaps_the_model_sent_to_the_provider():
    sent, pub = [], Recorder()
    checker = SyncChecker({"decision": "downgrade", "reason": "80%", "suggested_model": "gpt-4o-mini"})
    client = instrument_openai(openai_client(sent), pub, tags=TAGS, checker=checker)
    client.chat.completions.create(model="gpt-4o", messages=MSG)
    assert sent[0]["model"] == "gpt-4o-mini"


def test_a_failed_call_releases_its_hold():
    sent, pub, checker = [], Recorder(), SyncChecker()
    client = instrument_openai(openai_client(sent, status=400), pub, tags=TAGS, checker=checker)
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="gpt-4o", messages=MSG)
    assert checker.released == ["r-1"] and pub.events[0]["status"] == "error"


def test_an_unreachable_api_fails_open_by_default_and_closed_when_asked():
    sent, pub = [], Recorder()
    client = instrument_openai(openai_client(sent), pub, tags=TAGS, checker=SyncChecker(fail=True))
    client.chat.completions.create(model="gpt-4o", messages=MSG)
    assert len(sent) == 1 and pub.events[0].get("reservation_id") is None
    closed = instrument_openai(openai_client(sent), pub, tags=TAGS, checker=SyncChecker(fail=True), fail_open=False)
    with pytest.raises(EnforcementUnavailable):
        closed.chat.completions.create(model="gpt-4o", messages=MSG)
    assert len(sent) == 1


def test_an_async_client_is_guarded_by_an_async_checker_and_refuses_a_sync_one():
    sent, pub, checker = [], Recorder(), AsyncChecker()
    client = instrument_openai(openai_client(sent, async_=True), pub, tags=TAGS, checker=checker)
    asyncio.run(client.chat.completions.create(model="gpt-4o", messages=MSG))
    assert pub.events[0]["reservation_id"] == "r-1" and len(sent) == 1
    with pytest.raises(TypeError, match="async checker"):
        instrument_openai(openai_client(sent, async_=True), pub, tags=TAGS, checker=SyncChecker())


def test_anthropic_messages_are_guarded_too():
    sent, pub = [], Recorder()
    checker = SyncChecker({"decision": "deny", "reason": "over"})

    def handle(request):
        sent.append(request)
        return httpx2.Response(500)
    client = instrument_anthropic(anthropic.Anthropic(api_key="k", max_retries=0, http_client=httpx2.Client(
        transport=httpx2.MockTransport(handle))), pub, tags=TAGS, checker=checker)
    with pytest.raises(BudgetDenied):
        client.messages.create(model="claude-haiku-4-5", max_tokens=100, messages=MSG)
    assert (sent, pub.events, checker.requests[0]["provider"]) == ([], [], "anthropic")


def test_spend_guard_releases_when_the_block_raises():
    checker = SyncChecker()
    with pytest.raises(RuntimeError):
        with spend_guard(checker, tags=TAGS, provider="openai", model="gpt-4o", est_input=10) as guard:
            assert guard.reservation_id == "r-1"
            raise RuntimeError("provider down")
    assert checker.released == ["r-1"]


def test_anthropic_message_streams_are_checked_when_entered():
    from tests.unit.test_wrappers_streaming import anthropic_body

    def client(sent, asynchronous=False):
        def handle(request):
            sent.append(json.loads(request.content))
            return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=anthropic_body())
        transport = httpx2.MockTransport(handle)
        if asynchronous:
            return anthropic.AsyncAnthropic(api_key="k", max_retries=0, http_client=httpx2.AsyncClient(transport=transport))
        return anthropic.Anthropic(api_key="k", max_retries=0, http_client=httpx2.Client(transport=transport))

    sent, pub = [], Recorder()
    denied = instrument_anthropic(client(sent), pub, tags=TAGS, checker=SyncChecker({"decision": "deny", "reason": "x"}))
    with pytest.raises(BudgetDenied):
        with denied.messages.stream(model="claude-sonnet-4-5", max_tokens=100, messages=MSG) as stream:
            stream.get_final_message()
    assert (sent, pub.events) == ([], [])

    checker = AsyncChecker({"decision": "downgrade", "reason": "80%", "suggested_model": "claude-haiku-4-5",
                            "reservation_id": "r-7"})
    allowed = instrument_anthropic(client(sent, asynchronous=True), pub, tags=TAGS, checker=checker)

    async def go():
        async with allowed.messages.stream(model="claude-sonnet-4-5", max_tokens=100, messages=MSG) as stream:
            await stream.get_final_message()
    asyncio.run(go())
    assert sent[0]["model"] == "claude-haiku-4-5"
    [ev] = pub.events
    assert (ev["reservation_id"], ev["output_tokens"]) == ("r-7", 393)
