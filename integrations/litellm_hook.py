"""LiteLLM integration: one usage event per success and per failure, and a budget check before each call.

    litellm.callbacks = [SpendstreamLogger(publisher, checker=HttpChecker(url, key), tags={...})]

Events come from LiteLLM's standard logging payload (`kwargs["standard_logging_object"]`): model, provider,
tokens (cached and cache-write included, from the usage object), status. Tags come from the defaults given
here, overridden by request metadata (`metadata={"team": ..., "use_case": ...}` on the SDK, or the proxy's key /
team metadata). The pre-call check runs in `async_pre_call_deployment_hook` (LiteLLM SDK async calls) and in
`async_pre_call_hook` (the LiteLLM proxy): a deny raises BudgetDenied, a downgrade rewrites the model, anything
else lets the call through. When the enforcement API is unreachable the call proceeds if `fail_open`.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from typing import Any

from litellm.integrations.custom_logger import CustomLogger

from integrations.enforcement_check import Checker, check_request
from integrations.errors import BudgetDenied, EnforcementUnavailable
from integrations.llm_usage import openai_quantities
from schemas.models import OPTIONAL_TAGS, REQUIRED_TAGS

__all__ = ["SpendstreamLogger"]

log = logging.getLogger(__name__)
_TAGS = REQUIRED_TAGS + OPTIONAL_TAGS
_PROXY_TEAM_KEYS = ("user_api_key_team_alias", "team_alias", "user_api_key_team_id")


class SpendstreamLogger(CustomLogger):
    """`publisher` is anything with `record(**fields)` (normally `integrations.publisher.Publisher`)."""

    def __init__(self, publisher: Any, *, checker: Checker | None = None, tags: dict[str, str] | None = None,
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

    async def async_log_success_event(self, kwargs, response_obj, start_time, end_time):
        self._publish(kwargs, response_obj, "success")

    async def async_log_failure_event(self, kwargs, response_obj, start_time, end_time):
        self._publish(kwargs, response_obj, "error")

    def _publish(self, kwargs: dict, response_obj: Any, status: str) -> None:
        try:
            payload = kwargs.get("standard_logging_object") or {}
            call_id = kwargs.get("litellm_call_id") or payload.get("id")
            if call_id in self._seen:
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
                request_id=str(payload.get("id") or "") or None, **q, **self._tags(kwargs, payload),
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
        return await self._check(data)

    async def _check(self, data: dict) -> dict | None:
        """None (go ahead), a rewritten request (downgrade), or raises BudgetDenied."""
        if self.checker is None:
            return None
        model = str(data.get("model") or "")
        provider, _, name = model.rpartition("/")
        tags = {**self.default_tags, **{k: v for k, v in (data.get("metadata") or {}).items() if k in _TAGS}}
        chars = sum(len(str(m.get("content") or "")) for m in data.get("messages") or [] if isinstance(m, dict))
        est_out = data.get("max_completion_tokens") or data.get("max_tokens") or 0
        request = check_request(tags, provider or "unknown", name or model, chars // 4 + 1, est_out)
        try:
            decision = await asyncio.to_thread(self.checker.check, request)
        except EnforcementUnavailable:
            if self.fail_open:
                log.warning("spendstream: enforcement API unreachable; failing open for %s", model)
                return None
            raise
        verdict = decision.get("decision")
        if verdict in ("deny", "throttle"):
            raise BudgetDenied(str(decision.get("reason") or verdict), decision)
        if verdict == "downgrade" and decision.get("suggested_model"):
            return {**data, "model": f"{provider}/{decision['suggested_model']}" if provider else decision["suggested_model"]}
        return None


def _operation(call_type: str) -> str:
    ct = call_type.lstrip("a") if call_type.startswith("a") and call_type[1:] in _OPS else call_type
    return _OPS.get(ct, "chat")


_OPS = {"completion": "chat", "text_completion": "completion", "embedding": "embedding",
        "image_generation": "image", "transcription": "audio", "speech": "audio", "rerank": "rerank",
        "responses": "chat"}
