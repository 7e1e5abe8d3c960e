"""The LiteLLM hook through the real litellm package (mock_response=, no network)."""

from __future__ import annotations

import asyncio
import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no model-price download during tests

import litellm
import pytest

from integrations.errors import BudgetDenied, EnforcementUnavailable
from integrations.litellm_hook import SpendstreamLogger

pytestmark = pytest.mark.timeout(60)
MSG = [{"role": "user", "content": "summarise the quarterly GPU bill"}]
TAGS = {"team": "search", "cost_center": "cc-1", "use_case": "summaries", "environment": "production",
        "workload_type": "inference"}


class Recorder:
    """Collects what the hook would publish (the publisher itself is tested against tansu)."""

    def __init__(self):
        self.events = []

    def record(self, **fields):
        self.events.append(fields)
        return fields.get("event_id")


class Checker:
    def __init__(self, answer=None, fail=False):
        self.answer, self.fail, self.requests = answer or {"decision": "allow", "reason": "ok"}, fail, []

    def check(self, request):
        self.requests.append(request)
        if self.fail:
            raise EnforcementUnavailable("down")
        return self.answer


@pytest.fixture(scope="module")
def run():
    """One event loop for the module: litellm's async logging worker binds to the first loop it sees."""
    loop = asyncio.new_event_loop()
    yield loop.run_until_complete
    loop.close()


@pytest.fixture(scope="module")
def registered():
    """One hook instance for the module: litellm keeps callback instances in its own lists once seen."""
    h = SpendstreamLogger(Recorder(), tags=TAGS)
    old = litellm.callbacks
    litellm.callbacks = [h]
    yield h
    litellm.callbacks = old


@pytest.fixture()
def hook(registered):
    registered.publisher, registered.checker, registered.fail_open = Recorder(), None, True
    return registered


async def _settle(hook, n, timeout=5.0):
    for _ in range(int(timeout / 0.05)):
        if len(hook.publisher.events) >= n:
            return
        await asyncio.sleep(0.05)


def test_success_publishes_one_event_with_tokens_and_metadata_tags(hook, run):
    async def go():
        await litellm.acompletion(model="openai/gpt-4o-mini", messages=MSG, mock_response="ok",
                                  metadata={"team": "ads", "project": "p1"})
        await _settle(hook, 1)
    run(go())
    [ev] = hook.publisher.events
    assert (ev["provider"], ev["model"], ev["status"], ev["source"]) == ("openai", "gpt-4o-mini", "success", "litellm")
    assert (ev["input_tokens"], ev["output_tokens"]) == (10, 20)  # litellm's mock usage
    assert (ev["team"], ev["project"], ev["use_case"]) == ("ads", "p1", "summaries")
    assert ev["event_id"].startswith("litellm-")


def test_cached_prompt_tokens_are_split_from_uncached_input(hook, run):
    usage = litellm.Usage(prompt_tokens=1000, completion_tokens=50, total_tokens=1050,
                          prompt_tokens_details={"cached_tokens": 800},
                          completion_tokens_details={"reasoning_tokens": 20})
    resp = litellm.ModelResponse(choices=[{"message": {"role": "assistant", "content": "ok"}}], usage=usage,
                                 model="gpt-4o")

    async def go():
        await litellm.acompletion(model="openai/gpt-4o", messages=MSG, mock_response=resp)
        await _settle(hook, 1)
    run(go())
    [ev] = hook.publisher.events
    assert (ev["input_tokens"], ev["cached_input_tokens"], ev["output_tokens"], ev["reasoning_tokens"]) == (200, 800, 30, 20)


def test_failed_call_publishes_one_error_event(hook, run):
    async def go():
        with pytest.raises(Exception):
            await litellm.acompletion(model="anthropic/claude-haiku-4-5", messages=MSG,
                                      mock_response=Exception("provider down"))
        await _settle(hook, 1)
    run(go())
    [ev] = hook.publisher.events
    assert (ev["provider"], ev["status"], ev["input_tokens"]) == ("anthropic", "error", 0)


def test_sync_completion_publishes_exactly_one_event(hook, run):
    litellm.completion(model="openai/gpt-4o-mini", messages=MSG, mock_response="ok")
    run(_settle(hook, 1))
    assert len(hook.publisher.events) == 1


def test_denied_budget_rejects_the_call_with_the_reason(hook, run):
    hook.checker = Checker({"decision": "deny", "reason": "team search is over its monthly budget", "budget_id": "b1"})

    async def go():
        with pytest.raises(BudgetDenied, match="over its monthly budget"):
            await litellm.acompletion(model="openai/gpt-4o", messages=MSG, mock_response="never", max_tokens=300)
    run(go())
    [req] = hook.checker.requests
    assert req["team"] == "search" and req["provider"] == "openai" and req["model"] == "gpt-4o"
    assert req["estimated_output_tokens"] == 300 and req["estimated_input_tokens"] > 0


def test_downgrade_decision_switches_the_model(hook, run):
    hook.checker = Checker({"decision": "downgrade", "reason": "80% used", "suggested_model": "gpt-4o-mini"})

    async def go():
        await litellm.acompletion(model="openai/gpt-4o", messages=MSG, mock_response="ok")
        await _settle(hook, 1)
    run(go())
    assert hook.publisher.events[0]["model"] == "gpt-4o-mini"


def test_unreachable_enforcement_fails_open_by_default_and_closed_when_asked(hook, run):
    hook.checker = Checker(fail=True)

    async def go():
        await litellm.acompletion(model="openai/gpt-4o", messages=MSG, mock_response="ok")
        hook.fail_open = False
        with pytest.raises(EnforcementUnavailable):
            await litellm.acompletion(model="openai/gpt-4o", messages=MSG, mock_response="ok")
    run(go())


class AsyncChecker:
    """An async checker (the shape of AsyncHttpChecker): awaited on the hook's loop, never run in a thread."""

    def __init__(self, answer):
        self.answer, self.requests, self.released = answer, [], []

    async def check(self, request):
        asyncio.get_running_loop()                 # raises outside a running loop, i.e. in a worker thread
        self.requests.append(request)
        return self.answer

    async def release(self, reservation_id):
        self.released.append(reservation_id)
        return True


class CountingRecorder(Recorder):
    def __init__(self):
        super().__init__()
        self.denied = 0

    def count_denied(self):
        self.denied += 1


def test_an_unprefixed_model_is_checked_as_litellm_resolves_it(hook, run):
    hook.checker = AsyncChecker({"decision": "allow", "reason": "ok"})

    async def go():
        await litellm.acompletion(model="gpt-4o", messages=MSG, mock_response="ok")
        await _settle(hook, 1)
    run(go())
    [req] = hook.checker.requests
    assert (req["provider"], req["model"], req["reserve"]) == ("openai", "gpt-4o", True)


def test_a_denied_call_publishes_no_usage_event_and_is_counted(hook, run):
    run(asyncio.sleep(0.3))                        # let earlier calls' logging land on the old recorder
    hook.publisher = CountingRecorder()
    hook.checker = AsyncChecker({"decision": "deny", "reason": "budget b: this call is estimated at ..."})

    async def go():
        with pytest.raises(BudgetDenied):
            await litellm.acompletion(model="gpt-4o", messages=MSG, mock_response="never")
        await asyncio.sleep(0.5)                   # litellm logs the failure asynchronously
    run(go())
    # the denial would have been an error event with zero tokens (earlier tests' successes may still land here)
    assert [e for e in hook.publisher.events if e["status"] == "error"] == [] and hook.publisher.denied == 1


def test_the_usage_event_carries_the_reservation_and_a_failed_call_releases_it(hook, run):
    hook.checker = AsyncChecker({"decision": "allow", "reason": "ok", "reservation_id": "r-1"})

    async def go():
        await litellm.acompletion(model="gpt-4o", messages=MSG, mock_response="ok")
        await _settle(hook, 1)
        hook.checker.answer = {"decision": "allow", "reason": "ok", "reservation_id": "r-2"}
        with pytest.raises(Exception):
            await litellm.acompletion(model="gpt-4o", messages=MSG, mock_response=Exception("provider down"))
        await _settle(hook, 2)
        for _ in range(40):
            if hook.checker.released:
                break
            await asyncio.sleep(0.05)
    run(go())
    ok, failed = hook.publisher.events
    assert (ok["reservation_id"], ok["status"]) == ("r-1", "success")
    assert (failed["reservation_id"], failed["status"]) == ("r-2", "error")
    assert hook.checker.released == ["r-2"]


def test_the_proxy_hook_checks_for_the_keys_team_and_holds_in_the_metadata(hook, run):
    from litellm.proxy._types import UserAPIKeyAuth

    hook.checker = AsyncChecker({"decision": "downgrade", "reason": "80%", "suggested_model": "gpt-4o-mini",
                                 "reservation_id": "r-9"})
    data = {"model": "openai/gpt-4o", "messages": MSG, "metadata": {"use_case": "triage"}}
    out = run(hook.async_pre_call_hook(UserAPIKeyAuth(team_alias="payments"), None, data, "completion"))
    [req] = hook.checker.requests
    assert (req["team"], req["use_case"]) == ("payments", "triage")
    assert out["model"] == "openai/gpt-4o-mini"
    assert out["metadata"]["spendstream_reservation_id"] == "r-9"


def test_a_sync_completion_through_the_hook_is_checked_reserved_and_denied_before_it_leaves(hook, run):
    run(asyncio.sleep(0.3))
    hook.publisher = CountingRecorder()
    allow = Checker({"decision": "allow", "reason": "ok", "reservation_id": "r-s"})
    hook.completion(checker=allow, model="gpt-4o", messages=MSG, mock_response="ok")
    run(_settle(hook, 1))
    [ev] = hook.publisher.events
    assert (ev["reservation_id"], allow.requests[0]["provider"]) == ("r-s", "openai")
    with pytest.raises(BudgetDenied):
        hook.completion(checker=Checker({"decision": "deny", "reason": "over"}), model="gpt-4o", messages=MSG,
                        mock_response="never")
    run(asyncio.sleep(0.3))
    assert len(hook.publisher.events) == 1 and hook.publisher.denied == 1
    with pytest.raises(TypeError, match="sync checker"):
        hook.completion(checker=AsyncChecker({"decision": "allow"}), model="gpt-4o", messages=MSG)
