"""LiteLLM integration: one usage event per success and per failure, and a budget check before each call.

    litellm.callbacks = [SpendstreamLogger(publisher, checker=HttpChecker(url, key), tags={...})]

Events come from LiteLLM's standard logging payload (`kwargs["standard_logging_object"]`): model, provider,
tokens (cached and cache-write included, from the usage object), status. Tags come from the defaults given
here, overridden by request metadata (`metadata={"team": ..., "use_case": ...}` on the SDK, or the proxy's key /
team metadata). The pre-call check runs in `async_pre_call_deployment_hook` (LiteLLM SDK async calls) and in
`async_pre_call_hook` (the LiteLLM proxy, where the key's team decides the team), through
`integrations.spend_guard`: check + reserve; a deny raises BudgetDenied (and the failure LiteLLM then logs is
*not* published: the call never left; it is counted in the publisher's `stats.denied_calls`), a downgrade
rewrites the model, anything else lets the call through with the hold's id in the call's metadata
(`spendstream_reservation_id`); the usage event carries it as `reservation_id` and the worker settles the hold;
a failed call releases it. When the enforcement API is unreachable the call proceeds if `fail_open`.

Give an `AsyncHttpChecker` (pooled httpx.AsyncClient): the hooks are async and never block the loop. A sync
checker still works (run in a worker thread) for compatibility. The provider of an unprefixed model
(`model="gpt-4o"`) is resolved as LiteLLM does (`litellm.get_llm_provider`), so it is checked as `openai`.
Sync `litellm.completion()` runs no pre-call hook that can stop the call (an exception from the sync
`log_pre_api_call` is swallowed): call `hook.completion(checker=HttpChecker(...), **completion_kwargs)` instead.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections import OrderedDict
from typing import Any

from litellm.integrations.custom_logger import CustomLogger

from integrations.errors import BudgetDenied
from integrations.llm_usage import openai_quantities
from integrations.spend_guard import API_KEY_ATTRIBUTE, Guard, aopen_guard, arelease, open_guard, release, spend_guard
from schemas.models import OPTIONAL_TAGS, REQUIRED_TAGS

__all__ = ["SpendstreamLogger"]

log = logging.getLogger(__name__)
_TAGS = REQUIRED_TAGS + OPTIONAL_TAGS
_PROXY_TEAM_KEYS = ("user_api_key_team_alias", "team_alias", "user_api_key_team_id")
RESERVATION_KEY = "spendstream_reservation_id"
KEY_ID_KEY = "spendstream_api_key_id"  # the API key that made the hold: the event books to scope api_key


class SpendstreamLogger(CustomLogger):
    """`publisher` is anything with `record(**fields)` (normally `integrations.publisher.Publisher`)."""

    def __init__(self, publisher: Any, *, checker: Any = None, tags: dict[str, str] | None = None,
                 fail_open: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.publisher, self.checker, self.fail_open = publisher, checker, fail_open
        self.default_tags = dict(tags or {})
        self._seen: OrderedDict[str, None] = OrderedDict()  # call ids already published (sync + async paths)

    # -- events ------------------------------------------------------------------------------------------------

    def log_success_event(self, kwargs, response_obj, start_time, end_time):
        self._publish(kwargs, response_obj, "success")

    def log_failure_event(self, kwargs, response_obj, start_time, end_time):
        self._publish(kwargs, response_obj, "error")
        rid = _reservation(kwargs)
        if rid and self.checker is not None and not inspect.iscoroutinefunction(self.checker.check):
            release(self.checker, Guard(model="", reservation_id=rid))

    async def async_log_success_event(self, kwargs, response_obj, start_time, end_time):
        self._publish(kwargs, response_obj, "success")

    async def async_log_failure_event(self, kwargs, response_obj, start_time, end_time):
        self._publish(kwargs, response_obj, "error")
        rid = _reservation(kwargs)
        if rid and self.checker is not None:
            guard = Guard(model="", reservation_id=rid)
            if inspect.iscoroutinefunction(self.checker.check):
                await arelease(self.checker, guard)
            else:
                await asyncio.to_thread(release, self.checker, guard)

    def _publish(self, kwargs: dict, response_obj: Any, status: str) -> None:
        try:
            payload = kwargs.get("standard_logging_object") or {}
            call_id = kwargs.get("litellm_call_id") or payload.get("id")
            if call_id in self._seen:
                return
            if isinstance(kwargs.get("exception"), BudgetDenied):   # denied before it left: not a usage event
                self._seen[call_id] = None
                return
            self._seen[call_id] = None
            if len(self._seen) > 10_000:
                self._seen.popitem(last=False)
            usage = getattr(response_obj, "usage", None) or (payload.get("metadata") or {}).get("usage_object")
            q = openai_quantities(usage) or {
                "input_tokens": int(payload.get("prompt_tokens") or 0),
                "output_tokens": int(payload.get("completion_tokens") or 0),
            }
            start = payload.get("startTime")
            self.publisher.record(
                provider=payload.get("custom_llm_provider") or "unknown", model=payload.get("model") or "unknown",
                operation=_operation(payload.get("call_type") or ""), status=status, source="litellm",
                event_id=f"litellm-{call_id}", event_time=int(start * 1000) if start else None,
                request_id=str(payload.get("id") or "") or None, reservation_id=_reservation(kwargs),
                attributes=_key_attributes(kwargs), **q, **self._tags(kwargs, payload),
            )
        except Exception:  # a logging callback must never break the caller's completion
            log.exception("spendstream: could not publish the LiteLLM usage event")

    def _tags(self, kwargs: dict, payload: dict) -> dict[str, Any]:
        tags = dict(self.default_tags)
        proxy_meta = payload.get("metadata") or {}
        team = next((proxy_meta.get(k) for k in _PROXY_TEAM_KEYS if proxy_meta.get(k)), None)
        if team:
            tags["team"] = team
        for source in (proxy_meta.get("spend_logs_metadata"), proxy_meta.get("requester_metadata"),
                       (kwargs.get("litellm_params") or {}).get("metadata"), kwargs.get("metadata")):
            if isinstance(source, dict):
                tags.update({k: str(v) for k, v in source.items() if k in _TAGS and v})
        return tags

    # -- the budget check --------------------------------------------------------------------------------------

    async def async_pre_call_deployment_hook(self, kwargs: dict, call_type: Any) -> dict | None:
        return await self._check(kwargs)

    async def async_pre_call_hook(self, user_api_key_dict: Any, cache: Any, data: dict, call_type: Any) -> dict | None:
        team = getattr(user_api_key_dict, "team_alias", None) or getattr(user_api_key_dict, "team_id", None)
        return await self._check(data, team)

    def completion(self, *, checker: Any = None, **kwargs: Any) -> Any:
        """`litellm.completion(**kwargs)` checked and reserved first: LiteLLM runs no pre-call hook that can stop
        a sync call, so sync code calls this instead. `checker`: a sync checker (default: the hook's, when
        sync). Deny -> BudgetDenied before the call, nothing published; the hold is settled by the event."""
        import litellm

        checker = checker or self.checker
        if checker is None or inspect.iscoroutinefunction(checker.check):
            raise TypeError("SpendstreamLogger.completion needs a sync checker (HttpChecker)")
        est = self._estimate(kwargs)
        model = str(kwargs.get("model") or "")
        with spend_guard(checker, **est) as guard:
            return litellm.completion(**self._guarded(kwargs, model, est["model"], guard))

    def _estimate(self, data: dict, team: str | None = None) -> dict:
        provider, name = _provider(str(data.get("model") or ""))
        metadata = data.get("metadata") or {}
        tags = {**self.default_tags, **{k: v for k, v in metadata.items() if k in _TAGS}}
        if team:
            tags["team"] = str(team)
        chars = sum(len(str(m.get("content") or "")) for m in data.get("messages") or [] if isinstance(m, dict))
        return dict(tags=tags, provider=provider, model=name, est_input=chars // 4 + 1,
                    est_output=data.get("max_completion_tokens") or data.get("max_tokens") or 0,
                    fail_open=self.fail_open, publisher=self.publisher)

    @staticmethod
    def _guarded(data: dict, model: str, name: str, guard: Guard) -> dict:
        out = dict(data)
        if guard.model != name:
            out["model"] = guard.model if "/" not in model else f"{model.rpartition('/')[0]}/{guard.model}"
        if guard.reservation_id:
            out["metadata"] = {**(data.get("metadata") or {}), RESERVATION_KEY: guard.reservation_id,
                               **({KEY_ID_KEY: guard.api_key_id} if guard.api_key_id else {})}
        return out

    async def _check(self, data: dict, team: str | None = None) -> dict | None:
        """None (go ahead, nothing held), a rewritten request (downgrade and / or the hold's id in its metadata),
        or raises BudgetDenied (EnforcementUnavailable when the API is down and not `fail_open`)."""
        if self.checker is None:
            return None
        model = str(data.get("model") or "")
        est = self._estimate(data, team)
        if inspect.iscoroutinefunction(self.checker.check):
            guard = await aopen_guard(self.checker, **est)
        else:
            guard = await asyncio.to_thread(open_guard, self.checker, **est)
        if guard.model == est["model"] and not guard.reservation_id:
            return None
        return self._guarded(data, model, est["model"], guard)


def _provider(model: str) -> tuple[str, str]:
    """(provider, model name) as LiteLLM resolves them: `gpt-4o` -> openai, `anthropic/claude-x` -> anthropic."""
    try:
        import litellm

        name, provider, _, _ = litellm.get_llm_provider(model)
        return str(provider or "unknown"), str(name or model)
    except Exception:   # a model LiteLLM cannot place: keep an explicit prefix, else unknown
        provider, _, name = model.rpartition("/")
        return provider or "unknown", name or model


def _reservation(kwargs: dict, key: str = RESERVATION_KEY) -> str | None:
    for meta in ((kwargs.get("litellm_params") or {}).get("metadata"), kwargs.get("metadata")):
        if isinstance(meta, dict) and meta.get(key):
            return str(meta[key])
    return None


def _key_attributes(kwargs: dict) -> dict[str, str] | None:
    key_id = _reservation(kwargs, KEY_ID_KEY)
    return {API_KEY_ATTRIBUTE: key_id} if key_id else None


def _operation(call_type: str) -> str:
    ct = call_type.lstrip("a") if call_type.startswith("a") and call_type[1:] in _OPS else call_type
    return _OPS.get(ct, "chat")


_OPS = {"completion": "chat", "text_completion": "completion", "embedding": "embedding",
        "image_generation": "image", "transcription": "audio", "speech": "audio", "rerank": "rerank",
        "responses": "chat"}
