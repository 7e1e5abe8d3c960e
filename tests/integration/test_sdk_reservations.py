"""Reservations from the SDKs, end to end on the real servers: the real OpenAI client (mock HTTP transport for the
model only) and real litellm (`mock_response=`) check + reserve through the running `spendstream api`, publish
through the real Publisher -> tansu -> worker -> Redis: spend appears, the hold is settled, and the next call
past the limit is denied before any request leaves; the spend of both holds also books to the key that made them
(scope api_key)."""

from __future__ import annotations

import asyncio
import json
import os
import time

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import httpx
import litellm
import openai
import pytest
import redis

from integrations.enforcement_check import AsyncHttpChecker, HttpChecker
from integrations.errors import BudgetDenied
from integrations.litellm_hook import SpendstreamLogger
from integrations.openai_wrapper import instrument_openai
from integrations.publisher import Publisher, producer_config
from schemas.models import Budget, BudgetScope
from sinks.redis.keys import Keys
from spendstream.cli.services import create_topics
from spendstream.pricing import default_price_book
from spendstream.windows import window_ids
from tests.conftest import child, wait_until

pytestmark = pytest.mark.integration

ADMIN = "sdk-reservations-admin"
TAGS = {"cost_center": "cc-1", "use_case": "qa", "environment": "production", "workload_type": "inference"}
MSG = [{"role": "user", "content": "price this"}]
USAGE = {"prompt_tokens": 200_000, "completion_tokens": 50_000}      # gpt-4o: 0.50 + 0.50 = 1.00 USD
MAX_OUT = 60_000                                                      # estimate ~0.60 USD per call


def _actual() -> int:
    return default_price_book().price({"provider": "openai", "model": "gpt-4o", "input_tokens": 200_000,
                                       "output_tokens": 50_000, "event_time": int(time.time() * 1000), **TAGS}).charged_nanos


def _cell(r: redis.Redis, key: str) -> dict[str, int]:
    return {k.decode(): int(v) for k, v in r.hgetall(key).items()}


def _up(base: str) -> bool:
    try:
        return httpx.get(f"{base}/healthz", headers={"Authorization": f"Bearer {ADMIN}"}, timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def _openai_transport(sent: list):
    def handle(request: httpx.Request) -> httpx.Response:
        sent.append(json.loads(request.content))
        return httpx.Response(200, json={
            "id": f"chatcmpl-{len(sent)}", "object": "chat.completion", "created": 0, "model": "gpt-4o",
            "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "ok"}}],
            "usage": {**USAGE, "total_tokens": 250_000}})
    return httpx.MockTransport(handle)


def test_sdk_calls_reserve_settle_through_the_stream_and_the_next_call_past_the_limit_is_denied(isolated, tmp_path):
    from spendstream.cli.budgets import store_for

    settings = isolated.settings()
    create_topics(settings)
    store = store_for(settings)

    async def budgets():                  # room for one call (1.00 actual) but not a second estimate (~0.60)
        for team in ("payments", "search"):
            await store.put_budget(Budget(id=f"{team}-m", scope=BudgetScope(kind="team", value=team),
                                          limit_usd="1.5", mode="enforce", action="deny"))
    asyncio.run(budgets())
    loop = asyncio.new_event_loop()       # one loop for litellm: its logging worker binds to the first it sees
    base = f"http://127.0.0.1:{settings.api.port}"
    r = redis.Redis.from_url(settings.redis.url)
    month = window_ids(int(time.time() * 1000)).month
    cells = {t: f"{isolated.prefix}:{{team:{t}}}:{month}" for t in ("payments", "search")}
    publisher = Publisher(settings.kafka.usage_topic, producer_config(settings.kafka.bootstrap_servers), spool=None,
                          linger_s=0.02)
    sent: list = []
    client = instrument_openai(openai.OpenAI(api_key="sk-test", http_client=httpx.Client(
        transport=_openai_transport(sent))), publisher, tags={**TAGS, "team": "payments"},
        checker=HttpChecker(base, ADMIN, timeout_s=5))
    hook = SpendstreamLogger(publisher, checker=AsyncHttpChecker(base, ADMIN, timeout_s=5),
                             tags={**TAGS, "team": "search"})
    # litellm keeps one logger per class + public scalar attributes in its internal lists: drop loggers other
    # tests registered, or the success events would go to them
    manager = litellm.logging_callback_manager
    for stale in manager.get_custom_loggers_for_type(SpendstreamLogger):
        manager.remove_callback_from_all_lists(stale)
    old_callbacks, litellm.callbacks = litellm.callbacks, [hook]
    response = litellm.ModelResponse(choices=[{"message": {"role": "assistant", "content": "ok"}}], model="gpt-4o",
                                     usage=litellm.Usage(**USAGE, total_tokens=250_000))
    try:
        with child(["api"], {**isolated.env, "SPENDSTREAM_API__BOOTSTRAP_ADMIN_KEY": ADMIN}, tmp_path / "api.log"), \
                child(["worker"], isolated.env, tmp_path / "worker.log"):
            wait_until(lambda: _up(base), 30, what="API up")

            client.chat.completions.create(model="gpt-4o", messages=MSG, max_tokens=MAX_OUT)
            loop.run_until_complete(litellm.acompletion(model="gpt-4o", messages=MSG, mock_response=response,
                                                        max_tokens=MAX_OUT))
            loop.run_until_complete(asyncio.sleep(0.5))                 # litellm logs success asynchronously
            assert _cell(r, cells["payments"]).get("held", 0) > 0       # held until the event is booked
            publisher.flush(10)
            for team in ("payments", "search"):
                final = wait_until(lambda: (c := _cell(r, cells[team])).get("spend") and c.get("held", 0) == 0
                                   and c, 90, what=f"{team}: booked and settled")
                assert (final["spend"], final.get("held", 0), final["events"]) == (_actual(), 0, 1)
            # both holds were made with the bootstrap key: the wrapper's and the hook's events carry its id, so the
            # settled spend also books to scope api_key
            key_cell = _cell(r, Keys(isolated.prefix).window("api_key", "bootstrap", month))
            assert (key_cell.get("spend"), key_cell.get("events")) == (2 * _actual(), 2)

            with pytest.raises(BudgetDenied, match="estimated at"):
                client.chat.completions.create(model="gpt-4o", messages=MSG, max_tokens=MAX_OUT)
            with pytest.raises(BudgetDenied, match="estimated at"):
                loop.run_until_complete(litellm.acompletion(model="gpt-4o", messages=MSG,
                                                            mock_response=response, max_tokens=MAX_OUT))
            loop.run_until_complete(asyncio.sleep(0.5))
            assert len(sent) == 1                                       # the denied call never left
            assert publisher.stats.denied_calls == 2
            publisher.flush(10)
            time.sleep(2)
            assert [_cell(r, cells[t])["events"] for t in ("payments", "search")] == [1, 1]   # no event for denials
    finally:
        litellm.callbacks = old_callbacks
        manager.remove_callback_from_all_lists(hook)
        publisher.close(timeout=2)
        loop.close()
